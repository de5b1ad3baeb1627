//! The `signing-keys` job: the operator's signing-key rotation, by direct
//! invoke only. `{"action": "status" | "rotate" | "retire"}` (see
//! `caas::auth::rotation` and docs/RUNBOOK.md); answers the keys' status.

use caas::App;
use caas::auth::rotation::{self, Command};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn handler(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let command: Command = caas::http::from_value(event.payload)?;
    let status = rotation::run(app, command).await?;
    Ok(serde_json::to_value(status)?)
}
