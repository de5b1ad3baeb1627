//! The `migrate` job. Direct invoke: `{"action":"status"}`,
//! `{"action":"up","to":V,"segments":S,"dry_run":bool}`,
//! `{"action":"down","to":V,...}`. Jobs queue (SQS trigger, batch size 1):
//! segment work messages (`{"job":"migrate.segment",...}`), answered with
//! partial batch failures so a failed segment is redelivered and resumes
//! from its checkpoint.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use caas::App;
use caas::clock::Deadline;
use caas::migrate::{self, Command, Direction, Job};
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What Lambda hands the function: jobs from the queue, or a command.
#[derive(Debug, Clone)]
pub enum Input {
    Jobs(SqsEvent),
    Command(Command),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            SqsEvent::deserialize(value).map(Input::Jobs).map_err(serde::de::Error::custom)
        } else {
            Command::deserialize(value).map(Input::Command).map_err(serde::de::Error::custom)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Output {
    Batch(SqsBatchResponse),
    Report(Value),
}

pub async fn handler(app: &App, event: LambdaEvent<Input>) -> Result<Output, Error> {
    let deadline = Deadline(event.context.deadline);
    let report = match event.payload {
        Input::Jobs(jobs) => return Ok(Output::Batch(run_jobs(app, jobs, deadline).await)),
        Input::Command(Command::Status) => serde_json::to_value(migrate::status(app).await?)?,
        Input::Command(Command::Up { to, segments, dry_run }) => {
            serde_json::to_value(migrate::start(app, Direction::Up, to, segments, dry_run).await?)?
        }
        Input::Command(Command::Down { to, segments, dry_run }) => {
            serde_json::to_value(migrate::start(app, Direction::Down, Some(to), segments, dry_run).await?)?
        }
    };
    Ok(Output::Report(report))
}

async fn run_jobs(app: &App, jobs: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in jobs.records {
        let id = message.message_id.clone().unwrap_or_default();
        let result = match message.body.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(Job::Segment(job))) => migrate::run_segment(app, &job, deadline).await.map(|outcome| {
                tracing::info!(run_id = %job.run_id, segment = job.segment, ?outcome, "segment job handled");
            }),
            Some(Err(error)) => {
                Err(caas::AppError::bad_request("body", format!("not a job message: {error}")))
            }
            None => Err(caas::AppError::bad_request("body", "empty message")),
        };
        if let Err(error) = result {
            tracing::error!(message_id = %id, error = %error, "job failed; it will be redelivered");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
