//! The DynamoDB stream event source: every shard read from the trim horizon, records
//! filtered and handed on in batches, checkpointed by the batch response.
//!
//! [`StreamReader`] is the reading half (public, so tests read a stream exactly as the
//! local stack does); [`StreamSource`] adds the invocation, retries and skipping.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::Client;
use bytes::Bytes;
use serde_json::Value;

use super::{ERROR_WAIT, batch_status, failed_items, plural};
use crate::events::{self, display};
use crate::functions::Function;
use crate::runtime_api::Reply;

/// How long an idle stream poller waits before reading again.
const STREAM_IDLE_WAIT: Duration = Duration::from_millis(250);
/// Retries of a failing stream batch before it is skipped (the template's
/// `MaximumRetryAttempts` is not read; Lambda would then hand the batch to the
/// on-failure destination).
const STREAM_MAX_RETRIES: u32 = 10;

/// A DynamoDB stream event source.
pub struct StreamSource {
    pub function: Arc<Function>,
    pub stream_arn: String,
    pub batch_size: usize,
    pub filters: Vec<Value>,
    pub region: String,
}

/// A DynamoDB stream read the way Lambda's event source mapping reads it: every shard
/// from the trim horizon, each one by following its `NextShardIterator`; the records
/// that pass the `FilterCriteria` patterns wait, in shard order and in Lambda's event
/// shape, until a [`checkpoint`](Self::checkpoint) says they were processed.
pub struct StreamReader {
    stream_arn: String,
    batch_size: usize,
    filters: Vec<Value>,
    region: String,
    shards: BTreeMap<String, Shard>,
    /// The shard of the last batch: the next batch comes from the shards after it first.
    last: Option<String>,
}

/// Up to `batch_size` records of one shard, in order.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub shard_id: String,
    /// The records as Lambda delivers them: `{"Records": records}` is the function's event.
    pub records: Vec<EventRecord>,
    /// The records' sequence numbers, the `batchItemFailures` identifiers.
    pub sequence_numbers: Vec<String>,
}

#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    started: bool,
    /// Records read and filtered, not yet processed.
    pending: VecDeque<EventRecord>,
}

impl StreamSource {
    pub async fn run(self, client: Client) {
        let mut reader = StreamReader::new(
            self.stream_arn.clone(),
            self.batch_size,
            self.filters.clone(),
            self.region.clone(),
        );
        let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            match reader.next_batch(&client).await {
                Ok(Some(batch)) => self.process(&mut reader, &mut attempts, batch).await,
                Ok(None) => tokio::time::sleep(STREAM_IDLE_WAIT).await,
                Err(message) => {
                    tracing::warn!(stream = %self.stream_arn, %message, "DescribeStream failed");
                    tokio::time::sleep(ERROR_WAIT).await;
                }
            }
        }
    }

    async fn process(
        &self,
        reader: &mut StreamReader,
        attempts: &mut BTreeMap<String, u32>,
        batch: StreamBatch,
    ) {
        let size = batch.records.len();
        let mut event = Event::default();
        event.records = batch.records;
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        let trigger = format!("stream {} record{}", size, plural(size));
        let invoked =
            self.function.invoke(Bytes::from(payload), &trigger, |reply| batch_status(reply, size)).await;
        let done = processed(&invoked.reply, &batch.sequence_numbers);
        reader.checkpoint(&batch.shard_id, done);
        if done == size {
            attempts.remove(&batch.shard_id);
            return;
        }
        let attempt = attempts.entry(batch.shard_id.clone()).or_default();
        *attempt += 1;
        if *attempt > STREAM_MAX_RETRIES {
            let skipped = size - done;
            tracing::warn!(
                function = self.function.name(),
                skipped,
                "stream batch still failing after retries; skipping it"
            );
            reader.checkpoint(&batch.shard_id, skipped);
            attempts.remove(&batch.shard_id);
        } else {
            tokio::time::sleep(ERROR_WAIT * (*attempt).min(5)).await;
        }
    }
}

impl StreamReader {
    /// The reader of the stream `stream_arn` (records of `region`), batches of up to
    /// `batch_size` records that match any of `filters` (all records when empty).
    pub fn new(stream_arn: String, batch_size: usize, filters: Vec<Value>, region: String) -> Self {
        StreamReader {
            stream_arn,
            batch_size: batch_size.max(1),
            filters,
            region,
            shards: BTreeMap::new(),
            last: None,
        }
    }

    /// Lists the stream's shards and reads each one on (one `GetRecords` page at a time
    /// until a batch is waiting or the shard has nothing new); the next shard with
    /// records waiting gives its first `batch_size` of them. They keep waiting, and
    /// come again in the next batch, until [`checkpoint`](Self::checkpoint). `Ok(None)`:
    /// nothing is waiting; `Err`: the stream could not be described.
    pub async fn next_batch(&mut self, client: &Client) -> Result<Option<StreamBatch>, String> {
        for id in events::shard_ids(client, &self.stream_arn).await? {
            self.shards.entry(id).or_default();
        }
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in &ids {
            let mut shard = self.shards.remove(id).unwrap_or_default();
            if let Err(message) = self.read(client, id, &mut shard).await {
                tracing::warn!(shard = %id, %message, "reading the stream failed");
            }
            self.shards.insert(id.clone(), shard);
        }
        let after =
            self.last.as_ref().and_then(|last| ids.iter().position(|id| id == last)).map_or(0, |i| i + 1);
        let Some(id) =
            ids[after..].iter().chain(&ids[..after]).find(|id| !self.shards[*id].pending.is_empty())
        else {
            return Ok(None);
        };
        let records: Vec<EventRecord> =
            self.shards[id].pending.iter().take(self.batch_size).cloned().collect();
        let sequence_numbers =
            records.iter().map(|r| r.change.sequence_number.clone().unwrap_or_default()).collect();
        self.last = Some(id.clone());
        Ok(Some(StreamBatch { shard_id: id.clone(), records, sequence_numbers }))
    }

    /// Lambda's checkpoint: the first `processed` waiting records of the shard are done
    /// and never come again.
    pub fn checkpoint(&mut self, shard_id: &str, processed: usize) {
        if let Some(shard) = self.shards.get_mut(shard_id) {
            let processed = processed.min(shard.pending.len());
            shard.pending.drain(..processed);
        }
    }

    /// Fills the shard's waiting records up to one batch.
    async fn read(&self, client: &Client, shard_id: &str, shard: &mut Shard) -> Result<(), String> {
        if !shard.started {
            shard.iterator = events::trim_horizon(client, &self.stream_arn, shard_id).await?;
            shard.started = true;
        }
        while shard.pending.len() < self.batch_size {
            let Some(iterator) = shard.iterator.clone() else {
                return Ok(());
            };
            let output = client.get_records().shard_iterator(iterator).send().await.map_err(display)?;
            shard.iterator = output.next_shard_iterator().map(str::to_owned);
            let records = output.records();
            if records.is_empty() {
                return Ok(());
            }
            for record in records {
                let record = events::stream_record(record, &self.stream_arn, &self.region);
                if events::passes(&self.filters, &record) {
                    shard.pending.push_back(record);
                }
            }
        }
        Ok(())
    }
}

/// How many records of the batch (by sequence number, in order) are done: Lambda
/// checkpoints before the lowest failed sequence number; an identifier it cannot
/// place, or a failed invocation, fails the whole batch.
fn processed(reply: &Reply, sequences: &[String]) -> usize {
    let Reply::Success(payload) = reply else {
        return 0;
    };
    let failed = failed_items(payload);
    match failed.iter().map(|f| sequences.iter().position(|s| s == f)).collect::<Option<Vec<_>>>() {
        Some(positions) => positions.into_iter().min().unwrap_or(sequences.len()),
        None => 0,
    }
}
