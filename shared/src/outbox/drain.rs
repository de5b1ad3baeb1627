//! The outbox-drain service. Two invocations share it:
//!
//! - stream: a batch of DynamoDB stream records (template.yaml filters them to
//!   INSERTs of `kind = outbox`; anything else is skipped here too). Each outbox
//!   event is published to every queue its type is routed to
//!   ([`super::routes`]: the events queue, and for the chat events a
//!   conversation's participants see live the delivery queue, for what changes
//!   the search index the search queue), then the
//!   items every queue accepted are marked, 25 to a
//!   BatchWriteItem (four DynamoDB calls for a batch of 100). Records that
//!   could not be published or marked are reported by sequence number
//!   (`batchItemFailures`) so Lambda retries them.
//! - sweep: a scheduled `{"action":"sweep"}` publishes items still pending after
//!   a grace period, read from the sparse pending index — an event survives a
//!   lost stream record or a disabled trigger. Publishing twice is allowed (the
//!   queue dedups by event id for 5 minutes, the audit chain forever); losing an
//!   event is not: an item is only marked after SQS accepted it.

use super::OutboxEvent;
use super::publish::{self, Message};
use super::routes::{self, Destination};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::outbox as store;
use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

const SWEEP_PAGE: i32 = 100;

/// What the drain function is invoked with: a stream batch or the sweep
/// schedule's input. A stream event always has `Records`; the sweep input never.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Stream(dynamodb::Event),
    Sweep(SweepRequest),
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    Stream(DynamoDbEventResponse),
    Sweep(SweepReport),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub action: SweepAction,
    /// Items younger than this are left to the stream.
    #[serde(default = "default_grace_seconds")]
    pub grace_seconds: u32,
    /// Upper bound of events one invocation publishes.
    #[serde(default = "default_max_events")]
    pub max_events: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepAction {
    Sweep,
}

fn default_grace_seconds() -> u32 {
    300
}

fn default_max_events() -> u32 {
    1000
}

impl SweepRequest {
    pub fn new(grace_seconds: u32) -> Self {
        Self { action: SweepAction::Sweep, grace_seconds, max_events: default_max_events() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Pending items older than the grace period that were read.
    pub found: usize,
    pub published: usize,
    pub failed: usize,
    /// True when `max_events` stopped the sweep before the index was exhausted.
    pub more: bool,
}

/// Every destination's queue is configured (else the invocation fails, and
/// nothing is published half-way).
fn check_queues(app: &App) -> Result<(), AppError> {
    for destination in Destination::ALL {
        destination.queue_url(&app.config)?;
    }
    Ok(())
}

/// Publishes the outbox events of a stream batch; the failed records' sequence
/// numbers come back as batch item failures. A failed record without a
/// sequence number fails the whole invocation (Lambda then retries the batch).
#[tracing::instrument(skip_all, fields(records = event.records.len()))]
pub async fn drain_stream(app: &App, event: &dynamodb::Event) -> Result<DynamoDbEventResponse, AppError> {
    check_queues(app)?;
    let mut failed_records: Vec<Option<String>> = Vec::new();
    // Sequence numbers of the records carrying each event (a batch may carry
    // one record twice after a retry).
    let mut records_of: HashMap<String, Vec<Option<String>>> = HashMap::new();
    let mut events: Vec<OutboxEvent> = Vec::new();
    for record in &event.records {
        let sequence = record.change.sequence_number.clone();
        if record.event_name != "INSERT" {
            continue;
        }
        match store::event_from_image(record.change.new_image.clone()) {
            Ok(None) => {}
            Ok(Some(event)) => {
                let seen = records_of.entry(event.event_id.clone()).or_default();
                if seen.is_empty() {
                    events.push(event);
                }
                seen.push(sequence);
            }
            Err(error) => {
                tracing::error!(%error, sequence_number = sequence.as_deref(), "undecodable outbox record");
                failed_records.push(sequence);
            }
        }
    }
    let failed_events = publish_and_mark(app, events).await;
    for event_id in failed_events {
        failed_records.extend(records_of.remove(&event_id).unwrap_or_default());
    }
    let mut response = DynamoDbEventResponse::default();
    let mut seen = HashSet::new();
    for sequence in failed_records {
        let sequence = sequence
            .ok_or_else(|| AppError::Internal("a failed stream record has no sequence number".into()))?;
        if seen.insert(sequence.clone()) {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
        }
    }
    if !response.batch_item_failures.is_empty() {
        tracing::warn!(failed = response.batch_item_failures.len(), "stream records left for retry");
    }
    Ok(response)
}

/// Publishes pending items older than the grace period, oldest first per tenant.
#[tracing::instrument(skip_all, fields(grace_seconds = request.grace_seconds))]
pub async fn sweep(app: &App, request: &SweepRequest) -> Result<SweepReport, AppError> {
    check_queues(app)?;
    let table = &app.config.table_name;
    let before = app.now() - time::Duration::seconds(request.grace_seconds.into());
    let max = usize::try_from(request.max_events).unwrap_or(usize::MAX);
    let mut report = SweepReport::default();
    let mut events = Vec::new();
    'shards: for shard in store::pending_shards() {
        let mut start = None;
        loop {
            let (page, next) =
                store::pending_page(&app.clients.dynamodb, table, shard, before, SWEEP_PAGE, start).await?;
            for event in page {
                match event {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        tracing::error!(%error, "undecodable pending outbox item");
                        report.failed += 1;
                    }
                }
                if events.len() >= max {
                    report.more = true;
                    break 'shards;
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
    }
    report.found = events.len();
    let failed = publish_and_mark(app, events).await;
    report.failed += failed.len();
    report.published = report.found - failed.len();
    if report.found > 0 {
        tracing::info!(found = report.found, failed = report.failed, "sweep published pending outbox events");
    }
    Ok(report)
}

/// Publishes each event to every queue it is routed to (per message group in
/// event-id order, which is creation order) and marks what every one of them
/// accepted. Returns the ids of the events that failed either step.
async fn publish_and_mark(app: &App, mut events: Vec<OutboxEvent>) -> Vec<String> {
    if events.is_empty() {
        return Vec::new();
    }
    events.sort_by(|a, b| (&a.tenant_id, &a.event_id).cmp(&(&b.tenant_id, &b.event_id)));
    let mut failed: HashSet<String> = HashSet::new();
    for destination in Destination::ALL {
        let queue_url = match destination.queue_url(&app.config) {
            Ok(url) => url,
            Err(error) => {
                // Checked before any publishing; kept unmarked all the same.
                tracing::error!(%error, "queue not configured");
                failed.extend(events.iter().map(|e| e.event_id.clone()));
                continue;
            }
        };
        let mut messages = Vec::new();
        for event in events.iter().filter(|e| routes::destinations(&e.event_type).contains(&destination)) {
            match Message::of(event, destination.group_id(event)) {
                Ok(message) => messages.push(message),
                Err(error) => {
                    tracing::error!(%error, event_id = %event.event_id, "could not encode event");
                    failed.insert(event.event_id.clone());
                }
            }
        }
        if messages.is_empty() {
            continue;
        }
        let outcome = publish::publish(&app.clients.sqs, queue_url, messages).await;
        failed.extend(outcome.failed);
    }
    let to_mark: Vec<&OutboxEvent> = events.iter().filter(|e| !failed.contains(&e.event_id)).collect();
    // Published but not marked: retried, so published again (deduplicated downstream).
    let unmarked =
        store::mark_published(&app.clients.dynamodb, &app.config.table_name, &to_mark, &rfc3339(app.now()))
            .await;
    let mut failed: Vec<String> = failed.into_iter().collect();
    failed.extend(unmarked);
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_are_told_apart_by_shape() {
        let sweep: Invocation = serde_json::from_str(r#"{"action":"sweep"}"#).unwrap();
        assert!(matches!(sweep, Invocation::Sweep(SweepRequest { grace_seconds: 300, .. })));
        let stream: Invocation = serde_json::from_str(r#"{"Records":[]}"#).unwrap();
        assert!(matches!(stream, Invocation::Stream(_)));
        assert!(serde_json::from_str::<Invocation>(r#"{"action":"purge"}"#).is_err());
        assert!(serde_json::from_str::<Invocation>(r#"{"action":"sweep","extra":1}"#).is_err());
    }
}
