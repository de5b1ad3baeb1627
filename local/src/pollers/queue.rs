//! The SQS event source: the queue long-polled, each batch handed on, the messages
//! the function did not report as failed deleted.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use bytes::Bytes;

use super::{ERROR_WAIT, batch_status, failed_items, plural};
use crate::events;
use crate::functions::Function;
use crate::runtime_api::Reply;

/// An SQS queue event source.
pub struct QueueSource {
    pub function: Arc<Function>,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub region: String,
}

impl QueueSource {
    pub async fn run(self, client: Client) {
        loop {
            let received = events::receive_messages(&client, &self.queue_url, self.batch_size)
                .wait_time_seconds(1)
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

    async fn process(&self, client: &Client, messages: Vec<Message>) {
        let mut event = SqsEvent::default();
        event.records =
            messages.iter().map(|m| events::sqs_message(m, &self.queue_arn, &self.region)).collect();
        let count = event.records.len();
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        let trigger = format!("sqs {} message{}", count, plural(count));
        let invoked =
            self.function.invoke(Bytes::from(payload), &trigger, |reply| batch_status(reply, count)).await;
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
        if !entries.is_empty() {
            self.delete(client, entries).await;
        }
    }

    async fn delete(&self, client: &Client, entries: Vec<DeleteMessageBatchRequestEntry>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
