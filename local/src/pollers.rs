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
//!
//! Records and messages become events through [`crate::events`].

mod queue;
mod stream;

use std::time::Duration;

use serde_json::Value;

use crate::runtime_api::Reply;

pub use queue::QueueSource;
pub use stream::{StreamBatch, StreamReader, StreamSource};

/// After an API error, before trying again.
const ERROR_WAIT: Duration = Duration::from_secs(1);

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

/// The status column of a batch invocation.
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

    #[test]
    fn batch_failures_are_read_from_the_response() {
        let payload = br#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"a"}]}"#;
        assert_eq!(failed_items(payload), vec!["b".to_owned(), "a".to_owned()]);
        assert!(failed_items(b"null").is_empty());
        assert!(failed_items(br#"{"batchItemFailures":[]}"#).is_empty());
    }
}
