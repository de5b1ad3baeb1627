//! The event source mappings, emulated the way Lambda drives them (the emulator pushes
//! nothing):
//! - a DynamoDB stream is read shard by shard from the trim horizon; records that pass
//!   the `FilterCriteria` go to the function in batches of up to `BatchSize`; with
//!   `batchItemFailures` the shard checkpoints before the lowest failed sequence number
//!   and the rest is retried, a failed invocation retries the whole batch;
//! - an SQS queue is long-polled; after the function answers, the messages it did not
//!   report as failed are deleted; failed ones (and all of a failed invocation) stay on
//!   the queue and come back after the visibility timeout, so the queue's redrive
//!   policy moves them to the DLQ after `maxReceiveCount` receives.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::filter::matches_any;
use crate::functions::Function;
use crate::runtime_api::Reply;

/// How long an idle stream poller waits before reading again.
const STREAM_IDLE_WAIT: Duration = Duration::from_millis(250);
/// After an API error, before trying again.
const ERROR_WAIT: Duration = Duration::from_secs(1);
/// Retries of a failing stream batch before it is skipped (the template's
/// `MaximumRetryAttempts` is not read; Lambda would then hand the batch to the
/// on-failure destination).
pub const STREAM_MAX_RETRIES: u32 = 10;

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
    /// The records as Lambda delivers them (`aws_lambda_events`' DynamoDB `EventRecord`,
    /// as JSON): `{"Records": records}` is the function's event.
    pub records: Vec<Value>,
    /// The records' sequence numbers, the `batchItemFailures` identifiers.
    pub sequence_numbers: Vec<String>,
}

#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    started: bool,
    /// Records read and filtered, not yet processed.
    pending: VecDeque<(String, Value)>,
}

impl StreamSource {
    pub async fn run(self, client: aws_sdk_dynamodbstreams::Client) {
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
        let event = json!({ "Records": batch.records });
        let trigger = format!("stream {} record{}", size, plural(size));
        let invoked = self
            .function
            .invoke(Bytes::from(event.to_string()), &trigger, |reply| batch_status(reply, size))
            .await;
        let done = match &invoked.reply {
            Reply::Success(payload) => {
                let failed = failed_items(payload);
                // Lambda checkpoints before the lowest failed sequence number; an
                // identifier it cannot place fails the whole batch.
                match failed
                    .iter()
                    .map(|f| batch.sequence_numbers.iter().position(|s| s == f))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(positions) => positions.into_iter().min().unwrap_or(size),
                    None => 0,
                }
            }
            Reply::Failure { .. } => 0,
        };
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
    pub async fn next_batch(
        &mut self,
        client: &aws_sdk_dynamodbstreams::Client,
    ) -> Result<Option<StreamBatch>, String> {
        for id in self.shard_ids(client).await? {
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
        let (sequence_numbers, records) =
            self.shards[id].pending.iter().take(self.batch_size).cloned().unzip();
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

    async fn shard_ids(&self, client: &aws_sdk_dynamodbstreams::Client) -> Result<Vec<String>, String> {
        let described = client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
        Ok(described
            .stream_description()
            .map(|d| d.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect())
            .unwrap_or_default())
    }
}

impl StreamReader {
    /// Fills the shard's waiting records up to one batch.
    async fn read(
        &self,
        client: &aws_sdk_dynamodbstreams::Client,
        shard_id: &str,
        shard: &mut Shard,
    ) -> Result<(), String> {
        if !shard.started {
            let iterator = client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(display)?;
            shard.iterator = iterator.shard_iterator;
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
                let (sequence, json) = self.convert(record);
                if matches_any(&self.filters, &json) {
                    shard.pending.push_back((sequence, json));
                }
            }
        }
        Ok(())
    }

    /// The record as Lambda delivers it (`aws_lambda_events`' shape), with its
    /// sequence number.
    fn convert(&self, record: &aws_sdk_dynamodbstreams::types::Record) -> (String, Value) {
        let mut change = StreamRecord::default();
        let mut created = None;
        if let Some(part) = record.dynamodb() {
            change.keys = part.keys().cloned().unwrap_or_default().into();
            change.new_image = part.new_image().cloned().unwrap_or_default().into();
            change.old_image = part.old_image().cloned().unwrap_or_default().into();
            change.sequence_number = part.sequence_number().map(str::to_owned);
            change.size_bytes = part.size_bytes().unwrap_or_default();
            change.stream_view_type = part.stream_view_type().and_then(|v| match v.as_str() {
                "NEW_IMAGE" => Some(StreamViewType::NewImage),
                "OLD_IMAGE" => Some(StreamViewType::OldImage),
                "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
                "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
                _ => None,
            });
            created = part.approximate_creation_date_time().map(|t| t.secs());
        }
        let sequence = change.sequence_number.clone().unwrap_or_default();
        let mut out = EventRecord::default();
        out.aws_region = self.region.clone();
        out.change = change;
        out.event_id = record.event_id().unwrap_or_default().to_owned();
        out.event_name = record.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default();
        out.event_source = Some("aws:dynamodb".to_owned());
        out.event_version = record.event_version().map(str::to_owned);
        out.event_source_arn = Some(self.stream_arn.clone());
        let mut json = serde_json::to_value(&out).unwrap_or(Value::Null);
        if let (Some(created), Some(part)) =
            (created, json.get_mut("dynamodb").and_then(Value::as_object_mut))
        {
            part.insert("ApproximateCreationDateTime".to_owned(), Value::from(created));
        }
        (sequence, json)
    }
}

/// An SQS queue event source.
pub struct QueueSource {
    pub function: Arc<Function>,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub region: String,
}

impl QueueSource {
    pub async fn run(self, client: aws_sdk_sqs::Client) {
        loop {
            let received = client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(self.batch_size.clamp(1, 10))
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(e) => {
                    let message = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                    tracing::warn!(queue = %self.queue_url, %message, "ReceiveMessage failed");
                    tokio::time::sleep(ERROR_WAIT).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            self.process(&client, messages).await;
        }
    }

    async fn process(&self, client: &aws_sdk_sqs::Client, messages: Vec<aws_sdk_sqs::types::Message>) {
        let records: Vec<Value> = messages.iter().map(|m| self.convert(m)).collect();
        let count = records.len();
        let event = json!({ "Records": records });
        let trigger = format!("sqs {} message{}", count, plural(count));
        let invoked = self
            .function
            .invoke(Bytes::from(event.to_string()), &trigger, |reply| batch_status(reply, count))
            .await;
        let Reply::Success(payload) = &invoked.reply else {
            return; // Nothing is deleted: every message comes back after its visibility timeout.
        };
        let failed: HashSet<String> = failed_items(payload).into_iter().collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.contains(m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let deleted =
            client.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await;
        match deleted {
            Ok(output) if output.failed().is_empty() => {}
            Ok(output) => {
                tracing::warn!(queue = %self.queue_url, failed = output.failed().len(), "some deletes failed")
            }
            Err(e) => {
                let message = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                tracing::warn!(queue = %self.queue_url, %message, "DeleteMessageBatch failed");
            }
        }
    }

    /// The message as Lambda delivers it.
    fn convert(&self, message: &aws_sdk_sqs::types::Message) -> Value {
        let attributes: BTreeMap<String, String> = message
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
            .unwrap_or_default();
        let message_attributes: BTreeMap<String, Value> = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(name, v)| {
                        let mut attribute = json!({
                            "dataType": v.data_type(),
                            "stringListValues": [],
                            "binaryListValues": [],
                        });
                        if let Some(text) = v.string_value() {
                            attribute["stringValue"] = Value::from(text);
                        }
                        if let Some(blob) = v.binary_value() {
                            use base64::Engine as _;
                            attribute["binaryValue"] =
                                Value::from(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()));
                        }
                        (name.clone(), attribute)
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.md5_of_body(),
            "md5OfMessageAttributes": message.md5_of_message_attributes(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        })
    }
}

fn display(error: impl std::error::Error) -> String {
    aws_sdk_dynamodbstreams::error::DisplayErrorContext(error).to_string()
}

/// `batchItemFailures[].itemIdentifier` of a batch response (none when absent).
fn failed_items(payload: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("batchItemFailures").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|f| f.get("itemIdentifier").and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect()
}

fn batch_status(reply: &Reply, size: usize) -> String {
    match reply {
        Reply::Success(payload) => match failed_items(payload).len() {
            0 => "ok".to_owned(),
            n => format!("{n}/{size} failed"),
        },
        Reply::Failure { error_type, .. } => format!("error {error_type}"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::Console;
    use crate::runtime_api::tests::{fake_launch, temp_dir};
    use crate::template::FunctionSpec;

    const QUEUES: &str = r#"
Resources:
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDLQ.Arn, maxReceiveCount: 2}
  WorkDLQ:
    Type: AWS::SQS::Queue
"#;

    async fn bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive");
        received.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
    }

    /// Successes are deleted; a message the function reports as failed stays and,
    /// after `maxReceiveCount` receives, SQS moves it to the DLQ.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_queue_poller_deletes_successes_and_failures_end_in_the_dlq() {
        let sdk = crate::emulator_sdk_config().await.expect("AWS_ENDPOINT_URL (run through scripts/test)");
        let template = crate::Template::parse(QUEUES).expect("template");
        let stack = crate::provision(&template, &sdk, &crate::random_suffix()).await.expect("provision");
        let (work, dlq) = (&stack.resources["Work"], &stack.resources["WorkDLQ"]);
        let (work_url, dlq_url) = (work.url.clone().unwrap_or_default(), dlq.url.clone().unwrap_or_default());
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for body in ["ok-1", "fail-1", "ok-2"] {
            sqs.send_message().queue_url(&work_url).message_body(body).send().await.expect("send");
        }

        let dir = temp_dir();
        let spec = FunctionSpec {
            logical_id: "Fake".to_owned(),
            binary: "fake-function".to_owned(),
            code_uri: String::new(),
            timeout_seconds: 30,
            memory_mb: 128,
            events: Vec::new(),
        };
        let function = Arc::new(Function::new(spec, fake_launch(&dir), 1, Arc::new(Console)));
        let source = QueueSource {
            function: function.clone(),
            queue_url: work_url.clone(),
            queue_arn: work.arn.clone(),
            batch_size: 10,
            region: "us-east-1".to_owned(),
        };
        let poller = tokio::spawn(source.run(sqs.clone()));

        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let dead = loop {
            let dead = bodies(&sqs, &dlq_url).await;
            if !dead.is_empty() || tokio::time::Instant::now() > deadline {
                break dead;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        poller.abort();
        let _ = poller.await;
        assert_eq!(dead, vec!["fail-1".to_owned()]);
        assert!(bodies(&sqs, &work_url).await.is_empty(), "the successes were deleted");
        assert!(function.shutdown(Duration::from_secs(5)).await.is_empty());
        stack.teardown(&sdk).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn batch_failures_are_read_from_the_response() {
        let payload = br#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"a"}]}"#;
        assert_eq!(failed_items(payload), vec!["b".to_owned(), "a".to_owned()]);
        assert!(failed_items(b"null").is_empty());
        assert!(failed_items(br#"{"batchItemFailures":[]}"#).is_empty());
    }
}
