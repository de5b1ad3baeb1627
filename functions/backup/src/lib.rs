//! The `backup` job: `{"action":"run"}` daily (template.yaml's schedule),
//! `{"action":"drill"}` weekly and on demand, `{"action":"restore", ...}` on
//! demand. Returns the JSON summary; a failing run or drill fails the
//! invocation (the alarms watch the metrics it emits).

use caas::App;
use caas::backup::{self, Command, PointInTime};
use caas::clock::Deadline;
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A command, or an EventBridge scheduled event without an `Input` (run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input(pub Command);

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            return Ok(Input(Command::Run));
        }
        Command::deserialize(value).map(Input).map_err(serde::de::Error::custom)
    }
}

fn point_in_time(text: Option<&str>) -> Result<Option<PointInTime>, caas::AppError> {
    text.map(PointInTime::parse).transpose()
}

pub async fn handler(app: &App, event: LambdaEvent<Input>) -> Result<Value, Error> {
    let deadline = Deadline(event.context.deadline);
    let summary = match event.payload.0 {
        Command::Run => serde_json::to_value(backup::run(app).await?)?,
        Command::Drill { point_in_time: at, table } => {
            let at = point_in_time(at.as_deref())?;
            serde_json::to_value(backup::drill(app, at, table.as_deref(), deadline).await?)?
        }
        Command::Restore { target_table, point_in_time: at, backup_arn, source_table } => {
            let at = point_in_time(at.as_deref())?;
            let report = backup::restore(
                app,
                &target_table,
                at,
                backup_arn.as_deref(),
                source_table.as_deref(),
                deadline,
            )
            .await?;
            serde_json::to_value(report)?
        }
    };
    Ok(summary)
}
