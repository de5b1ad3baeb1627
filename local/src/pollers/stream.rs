//! The DynamoDB stream event source: every shard read from the trim horizon, records
//! filtered and handed on in batches, checkpointed by the batch response.

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

#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    started: bool,
    /// Records read and filtered, not yet processed.
    pending: VecDeque<EventRecord>,
    attempts: u32,
}

impl StreamSource {
    pub async fn run(self, client: Client) {
        let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
        loop {
            match events::shard_ids(&client, &self.stream_arn).await {
                Ok(ids) => {
                    for id in ids {
                        shards.entry(id).or_default();
                    }
                }
                Err(message) => {
                    tracing::warn!(stream = %self.stream_arn, %message, "DescribeStream failed");
                    tokio::time::sleep(ERROR_WAIT).await;
                    continue;
                }
            }
            let mut worked = false;
            for (id, shard) in &mut shards {
                if let Err(message) = self.read(&client, id, shard).await {
                    tracing::warn!(shard = %id, %message, "reading the stream failed");
                }
                if !shard.pending.is_empty() {
                    self.process(shard).await;
                    worked = true;
                }
            }
            if !worked {
                tokio::time::sleep(STREAM_IDLE_WAIT).await;
            }
        }
    }

    /// Fills the shard's pending records up to one batch.
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

    async fn process(&self, shard: &mut Shard) {
        let size = shard.pending.len().min(self.batch_size);
        let mut event = Event::default();
        event.records = shard.pending.iter().take(size).cloned().collect();
        let sequences: Vec<String> =
            event.records.iter().map(|r| r.change.sequence_number.clone().unwrap_or_default()).collect();
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        let trigger = format!("stream {} record{}", size, plural(size));
        let invoked =
            self.function.invoke(Bytes::from(payload), &trigger, |reply| batch_status(reply, size)).await;
        let done = processed(&invoked.reply, &sequences);
        shard.pending.drain(..done);
        if done == size {
            shard.attempts = 0;
            return;
        }
        shard.attempts += 1;
        if shard.attempts > STREAM_MAX_RETRIES {
            let skipped = size - done;
            tracing::warn!(
                function = self.function.name(),
                skipped,
                "stream batch still failing after retries; skipping it"
            );
            shard.pending.drain(..skipped);
            shard.attempts = 0;
        } else {
            tokio::time::sleep(ERROR_WAIT * shard.attempts.min(5)).await;
        }
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
