//! Stream and queue triggers, emulated the way Lambda drives them (the
//! emulator pushes nothing): the table's stream is read with
//! DescribeStream / GetShardIterator(TRIM_HORIZON) / GetRecords, records are
//! filtered with the function's `FilterCriteria` from template.yaml and turned
//! into the `aws_lambda_events` DynamoDB event; a queue is read with
//! ReceiveMessage into an `SqsEvent`, and after the handler answered, the
//! messages it did not report as failed are deleted, the failed ones released.
//!
//! Records and messages become events, and pass or fail the filter, through
//! `caas_local::events`: the same code the local stack's pollers deliver with.

use crate::TestStack;
use aws_lambda_events::event::dynamodb::{self, EventRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use caas_local::{EventSource, events};
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
    region: String,
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
            region: stack.stack.region(),
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
        events::shard_ids(&self.client, &self.stream_arn).await.expect("describe stream")
    }

    async fn trim_horizon(&self, shard: &str) -> String {
        events::trim_horizon(&self.client, &self.stream_arn, shard)
            .await
            .expect("get shard iterator")
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
            records.extend(batch.iter().map(|r| events::stream_record(r, &self.stream_arn, &self.region)));
            match output.next_shard_iterator {
                Some(next) if !done => iterator = next,
                _ => return records,
            }
        }
    }

    /// Lambda's filter rule, with the template's `FilterCriteria`.
    fn matches(&self, record: &EventRecord) -> bool {
        events::passes(&self.filters, record)
    }
}

/// An SQS queue trigger (a queue of the test stack by logical id).
pub struct QueueTrigger {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    queue_arn: String,
    region: String,
}

impl QueueTrigger {
    pub fn new(stack: &TestStack, queue: &str) -> Self {
        let queue_url = stack.stack.queue_url(queue).unwrap_or_else(|| panic!("no queue {queue}")).to_owned();
        let queue_arn = stack.stack.resources[queue].arn.clone();
        Self { sqs: aws_sdk_sqs::Client::new(&stack.sdk), queue_url, queue_arn, region: stack.stack.region() }
    }

    /// Up to `max` (1..=10) visible messages as Lambda's SQS event, with the
    /// system attributes (MessageGroupId, SequenceNumber, ...) and message
    /// attributes, as the event source mapping reads them. Received
    /// messages stay invisible until [`settle`](Self::settle).
    pub async fn receive(&self, max: i32) -> SqsEvent {
        let output = events::receive_messages(&self.sqs, &self.queue_url, max)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive messages");
        let mut event = SqsEvent::default();
        event.records =
            output.messages().iter().map(|m| events::sqs_message(m, &self.queue_arn, &self.region)).collect();
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

/// What Lambda would do with the outbox: the stream's new records through
/// outbox-drain, then the events queue through audit-writer until it is empty.
pub async fn audit_pipeline(stack: &TestStack, stream: &StreamTrigger, queue: &QueueTrigger) {
    let drain = stack.app("OutboxDrainFunction");
    let drained = outbox_drain::handler(&drain, StreamTrigger::event(stream.poll().await)).await.unwrap();
    assert!(drained.batch_item_failures.is_empty());
    let writer = stack.app("AuditWriterFunction");
    loop {
        let batch = queue.receive(10).await;
        if batch.records.is_empty() {
            return;
        }
        let response = audit_writer::handler(&writer, lambda_event(batch.clone())).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        queue.settle(&batch, &response).await;
    }
}

/// A synthetic `user.login_succeeded` event of `tenant` with `payload`.
pub fn synthetic_event(tenant: &str, n: u32, payload: Value) -> caas::outbox::OutboxEvent {
    caas::outbox::OutboxEvent::new(
        &caas::tenant::TenantId::parse(tenant).expect("a tenant id"),
        "user",
        &format!("user-{n}"),
        "user.login_succeeded",
        time::OffsetDateTime::now_utc(),
        "test",
        payload,
    )
}

/// caas-local's reader of OutboxDrainFunction's stream, configured from its
/// event source in template.yaml (table, batch size, filters), as the local
/// stack's stream trigger is.
pub fn outbox_drain_stream_reader(stack: &TestStack) -> caas_local::StreamReader {
    let spec = stack
        .template
        .functions()
        .into_iter()
        .find(|f| f.logical_id == "OutboxDrainFunction")
        .expect("OutboxDrainFunction in template.yaml");
    let (table, batch_size, filters) = spec
        .events
        .iter()
        .find_map(|e| match e {
            EventSource::DynamoDbStream { table_logical_id, batch_size, filter_patterns } => {
                Some((table_logical_id.clone(), *batch_size, filter_patterns.clone()))
            }
            _ => None,
        })
        .expect("OutboxDrainFunction has a DynamoDB stream event");
    let stream_arn = stack.stack.resources[&table].stream_arn.clone().expect("the table has a stream");
    let region = stack.sdk.region().map_or("us-east-1".to_owned(), |r| r.to_string());
    caas_local::StreamReader::new(stream_arn, usize::try_from(batch_size).unwrap_or(100), filters, region)
}
