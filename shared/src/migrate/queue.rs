//! The jobs queue: segment work is handed out, and handed over, as messages.

use super::Job;
use crate::app::App;
use crate::config::ConfigError;
use crate::error::AppError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// SendMessageBatch's limit.
const SQS_BATCH: usize = 10;

/// The jobs queue of this function (`JOBS_QUEUE_URL`).
pub(super) fn jobs_queue(app: &App) -> Result<&str, AppError> {
    app.config.jobs_queue_url.as_deref().ok_or_else(|| ConfigError::Missing("JOBS_QUEUE_URL").into())
}

fn entry(index: usize, job: &Job) -> Result<SendMessageBatchRequestEntry, AppError> {
    let body = serde_json::to_string(job).map_err(|e| AppError::internal("encode job", e))?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(body)
        .build()
        .map_err(|e| AppError::internal("build job message", e))
}

/// Sends jobs to the jobs queue, ten per request; any entry the queue
/// refuses fails the call (callers retry the whole step; jobs are idempotent).
pub async fn enqueue(app: &App, queue_url: &str, jobs: &[Job]) -> Result<(), AppError> {
    for chunk in jobs.chunks(SQS_BATCH) {
        let entries =
            chunk.iter().enumerate().map(|(index, job)| entry(index, job)).collect::<Result<_, _>>()?;
        let output = app
            .clients
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enqueue jobs", e))?;
        if !output.failed().is_empty() {
            let codes: Vec<&str> = output.failed().iter().map(|f| f.code()).collect();
            return Err(AppError::Unavailable(format!(
                "the jobs queue refused messages: {}",
                codes.join(", ")
            )));
        }
    }
    Ok(())
}
