//! Stream and queue triggers, emulated the way Lambda drives them (the
//! emulator pushes nothing): the table's stream is read with
//! DescribeStream / GetShardIterator(TRIM_HORIZON) / GetRecords, records are
//! filtered with the function's `FilterCriteria` from template.yaml and turned
//! into the `aws_lambda_events` DynamoDB event; a queue is read with
//! ReceiveMessage into an `SqsEvent`, and after the handler answered, the
//! messages it did not report as failed are deleted, the failed ones released.

use crate::TestStack;
use aws_lambda_events::event::dynamodb::{self, EventRecord, StreamRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use caas_local::EventSource;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;

/// Wraps a payload as the runtime hands it to a handler.
pub fn lambda_event<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, Context::default())
}

/// The DynamoDB stream trigger of one function of template.yaml.
pub struct StreamTrigger {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    filters: Vec<Value>,
    /// Records already returned by [`poll`](Self::poll), by event id.
    seen: Mutex<HashSet<String>>,
}

impl StreamTrigger {
    /// The trigger of `function`'s `DynamoDB` event in template.yaml.
    pub fn new(stack: &TestStack, function: &str) -> Self {
        let spec = stack
            .template
            .functions()
            .into_iter()
            .find(|f| f.logical_id == function)
            .unwrap_or_else(|| panic!("{function} is not in template.yaml"));
        let (table, filters) = spec
            .events
            .iter()
            .find_map(|e| match e {
                EventSource::DynamoDbStream { table_logical_id, filter_patterns, .. } => {
                    Some((table_logical_id.clone(), filter_patterns.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{function} has no DynamoDB stream event"));
        let stream_arn = stack.stack.resources[&table]
            .stream_arn
            .clone()
            .unwrap_or_else(|| panic!("{table} has no stream"));
        Self {
            client: aws_sdk_dynamodbstreams::Client::new(&stack.sdk),
            stream_arn,
            filters,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Records written since the last poll (the first poll starts at the trim
    /// horizon), in shard order, filtered like the event source mapping.
    ///
    /// Each poll re-reads from the trim horizon and skips the records already
    /// returned (by event id): the emulator streams the puts of a cancelled
    /// transaction and later drops them again, which shifts the records after
    /// them, so a saved shard iterator would miss those.
    pub async fn poll(&self) -> Vec<EventRecord> {
        let all = self.read_all().await;
        let mut seen = self.seen.lock().unwrap();
        all.into_iter().filter(|r| seen.insert(r.event_id.clone())).filter(|r| self.matches(r)).collect()
    }

    /// Every record still in the stream, from the trim horizon, filtered; does
    /// not move the trigger's own position (a replay of the stream).
    pub async fn replay(&self) -> Vec<EventRecord> {
        self.read_all().await.into_iter().filter(|r| self.matches(r)).collect()
    }

    async fn read_all(&self) -> Vec<EventRecord> {
        let mut records = Vec::new();
        for shard in self.shards().await {
            let iterator = self.trim_horizon(&shard).await;
            records.extend(self.read(iterator).await);
        }
        records
    }

    /// The event Lambda would send for `records`.
    pub fn event(records: Vec<EventRecord>) -> LambdaEvent<dynamodb::Event> {
        let mut event = dynamodb::Event::default();
        event.records = records;
        lambda_event(event)
    }

    async fn shards(&self) -> Vec<String> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .expect("describe stream")
            .stream_description
            .expect("stream description");
        description.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect()
    }

    async fn trim_horizon(&self, shard: &str) -> String {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("get shard iterator")
            .shard_iterator
            .expect("a shard iterator")
    }

    /// Reads a shard until it returns no more records.
    async fn read(&self, mut iterator: String) -> Vec<EventRecord> {
        let mut records = Vec::new();
        loop {
            let output =
                self.client.get_records().shard_iterator(&iterator).send().await.expect("get records");
            let batch = output.records.unwrap_or_default();
            let done = batch.is_empty();
            records.extend(batch.into_iter().map(|r| self.convert(r)));
            match output.next_shard_iterator {
                Some(next) if !done => iterator = next,
                _ => return records,
            }
        }
    }

    fn convert(&self, record: aws_sdk_dynamodbstreams::types::Record) -> EventRecord {
        let change = record.dynamodb.expect("a stream record has a dynamodb part");
        let mut stream = StreamRecord::default();
        stream.keys = change.keys.unwrap_or_default().into();
        stream.new_image = change.new_image.unwrap_or_default().into();
        stream.old_image = change.old_image.unwrap_or_default().into();
        stream.sequence_number = change.sequence_number;
        stream.size_bytes = change.size_bytes.unwrap_or_default();
        stream.stream_view_type = Some(dynamodb::StreamViewType::NewAndOldImages);
        let mut out = EventRecord::default();
        out.aws_region = record.aws_region.unwrap_or_else(|| "us-east-1".to_owned());
        out.change = stream;
        out.event_id = record.event_id.unwrap_or_default();
        out.event_name = record.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default();
        out.event_source = record.event_source;
        out.event_version = record.event_version;
        out.event_source_arn = Some(self.stream_arn.clone());
        out
    }

    /// Lambda's filter rule: a record passes if any pattern matches its JSON form.
    fn matches(&self, record: &EventRecord) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let json = serde_json::to_value(record).expect("record as JSON");
        self.filters.iter().any(|pattern| pattern_matches(pattern, &json))
    }
}

/// The subset of EventBridge-style patterns the template uses: objects nest,
/// arrays list the allowed values.
pub fn pattern_matches(pattern: &Value, value: &Value) -> bool {
    match pattern {
        Value::Object(fields) => {
            fields.iter().all(|(key, sub)| value.get(key).is_some_and(|v| pattern_matches(sub, v)))
        }
        Value::Array(allowed) => allowed.iter().any(|a| a == value),
        other => other == value,
    }
}

/// An SQS queue trigger (a queue of the test stack by logical id).
pub struct QueueTrigger {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl QueueTrigger {
    pub fn new(stack: &TestStack, queue: &str) -> Self {
        let queue_url = stack.stack.queue_url(queue).unwrap_or_else(|| panic!("no queue {queue}")).to_owned();
        Self { sqs: aws_sdk_sqs::Client::new(&stack.sdk), queue_url }
    }

    /// Up to `max` (1..=10) visible messages as Lambda's SQS event, with the
    /// system attributes (MessageGroupId, SequenceNumber, ...). Received
    /// messages stay invisible until [`settle`](Self::settle).
    pub async fn receive(&self, max: i32) -> SqsEvent {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(300)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive messages");
        let mut event = SqsEvent::default();
        event.records = output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let mut message = SqsMessage::default();
                message.message_id = m.message_id;
                message.receipt_handle = m.receipt_handle;
                message.body = m.body;
                message.md5_of_body = m.md5_of_body;
                message.attributes = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v))
                    .collect();
                message.event_source = Some("aws:sqs".to_owned());
                message.aws_region = Some("us-east-1".to_owned());
                message
            })
            .collect();
        event
    }

    /// What Lambda does with the handler's answer: deletes the messages not
    /// reported as failed, makes the failed ones visible again.
    pub async fn settle(&self, event: &SqsEvent, response: &SqsBatchResponse) {
        let failed: HashSet<&str> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        for message in &event.records {
            let id = message.message_id.as_deref().unwrap_or_default();
            let handle = message.receipt_handle.as_deref().expect("receipt handle");
            if failed.contains(id) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("release message");
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Receives everything currently visible (batches of 10) and deletes it:
    /// what is on the queue, in receive order.
    pub async fn drain(&self) -> Vec<SqsMessage> {
        let mut all = Vec::new();
        loop {
            let event = self.receive(10).await;
            if event.records.is_empty() {
                return all;
            }
            self.settle(&event, &SqsBatchResponse::default()).await;
            all.extend(event.records);
        }
    }
}

/// The outbox events carried by stream records (other items are skipped).
pub fn outbox_events(records: &[EventRecord]) -> Vec<caas::outbox::OutboxEvent> {
    records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(|r| {
            caas::store::outbox::event_from_image(r.change.new_image.clone()).expect("outbox image decodes")
        })
        .collect()
}
