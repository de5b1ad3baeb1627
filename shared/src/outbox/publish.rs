//! Publishing envelopes to an SQS FIFO queue: `MessageGroupId` = the event's
//! group on that queue ([`super::routes`]: the tenant on the events queue, the
//! conversation on the delivery queue), `MessageDeduplicationId` = event id, body = the envelope
//! JSON, sent with `SendMessageBatch` in batches of at most 10 entries and
//! 256 KiB in total (the per-message and per-batch limits; a larger envelope
//! can never be sent and is reported as failed).
//!
//! Order: batches go out one after the other in the order given; once one
//! event of a group fails, that group's later events are not sent in this
//! call (they fail too), so a retry never puts a later event before an earlier
//! one in the message group.

use super::OutboxEvent;
use crate::error::AppError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::HashSet;

pub const MAX_BATCH_ENTRIES: usize = 10;
/// 256 KiB: the limit for one message and for the sum of a batch's bodies.
pub const MAX_BATCH_BYTES: usize = 262_144;
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES;

/// One envelope ready to send.
#[derive(Debug, Clone)]
pub struct Message {
    pub event_id: String,
    /// The FIFO message group.
    pub group_id: String,
    pub body: String,
}

impl Message {
    pub fn of(event: &OutboxEvent, group_id: String) -> Result<Self, AppError> {
        Ok(Self { event_id: event.event_id.clone(), group_id, body: event.to_message_body()? })
    }
}

/// Which events reached the queue and which did not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub published: Vec<String>,
    pub failed: Vec<String>,
}

/// Splits messages, in order, into batches within the entry and byte limits.
/// Messages too large for any batch come back separately.
pub fn batches(messages: Vec<Message>) -> (Vec<Vec<Message>>, Vec<Message>) {
    let mut out: Vec<Vec<Message>> = Vec::new();
    let mut oversized = Vec::new();
    let mut current: Vec<Message> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let size = message.body.len();
        if size > MAX_MESSAGE_BYTES {
            oversized.push(message);
            continue;
        }
        if current.len() == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(message);
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, oversized)
}

/// Sends the messages (see the module doc for order and failure rules).
/// Transport and service errors are not returned: they fail the entries.
pub async fn publish(sqs: &aws_sdk_sqs::Client, queue_url: &str, messages: Vec<Message>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut failed_groups: HashSet<String> = HashSet::new();
    let (batches, oversized) = batches(messages);
    for message in oversized {
        tracing::error!(event_id = %message.event_id, bytes = message.body.len(), "event too large for a queue message");
        failed_groups.insert(message.group_id.clone());
        outcome.failed.push(message.event_id);
    }
    for batch in batches {
        let (blocked, batch): (Vec<Message>, Vec<Message>) =
            batch.into_iter().partition(|m| failed_groups.contains(&m.group_id));
        outcome.failed.extend(blocked.into_iter().map(|m| m.event_id));
        if batch.is_empty() {
            continue;
        }
        let result = send_batch(sqs, queue_url, &batch).await;
        for (message, sent) in batch.into_iter().zip(result) {
            if sent {
                outcome.published.push(message.event_id);
            } else {
                failed_groups.insert(message.group_id);
                outcome.failed.push(message.event_id);
            }
        }
    }
    outcome
}

/// One `SendMessageBatch` call; per entry, whether SQS accepted it.
async fn send_batch(sqs: &aws_sdk_sqs::Client, queue_url: &str, batch: &[Message]) -> Vec<bool> {
    let entries: Result<Vec<_>, _> = batch
        .iter()
        .enumerate()
        .map(|(i, m)| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(&m.body)
                .message_group_id(&m.group_id)
                .message_deduplication_id(&m.event_id)
                .build()
        })
        .collect();
    let entries = match entries {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, "could not build the message batch");
            return vec![false; batch.len()];
        }
    };
    match sqs.send_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await {
        Ok(output) => {
            for failure in output.failed() {
                tracing::warn!(
                    entry = failure.id(),
                    code = failure.code(),
                    sender_fault = failure.sender_fault(),
                    "the queue refused an entry"
                );
            }
            let ok: HashSet<&str> = output.successful().iter().map(|s| s.id()).collect();
            (0..batch.len()).map(|i| ok.contains(format!("m{i}").as_str())).collect()
        }
        Err(error) => {
            let error = AppError::from_sdk("send message batch", error);
            tracing::warn!(%error, entries = batch.len(), "queue unavailable");
            vec![false; batch.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: usize, size: usize) -> Message {
        Message { event_id: format!("e{i}"), group_id: "acme".into(), body: "x".repeat(size) }
    }

    #[test]
    fn batches_respect_entry_and_byte_limits_in_order() {
        let (b, big) = batches((0..25).map(|i| message(i, 10)).collect());
        assert!(big.is_empty());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(
            b.concat().iter().map(|m| m.event_id.clone()).collect::<Vec<_>>(),
            (0..25).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );

        let (b, big) = batches((0..5).map(|i| message(i, 100_000)).collect());
        assert!(big.is_empty());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(b.iter().all(|batch| batch.iter().map(|m| m.body.len()).sum::<usize>() <= MAX_BATCH_BYTES));

        let (b, big) =
            batches(vec![message(0, 10), message(1, MAX_MESSAGE_BYTES + 1), message(2, MAX_MESSAGE_BYTES)]);
        assert_eq!(big.len(), 1);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
    }
}
