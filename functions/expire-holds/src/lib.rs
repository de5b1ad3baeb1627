//! The `expire-holds` job (scheduled, or invoked with `{"limit": n}`):
//! releases the authorizations whose `capture_before` has passed, through
//! the ledger (`payment.expired`); reports how many.

use caas::App;
use caas::payments::expiry::{DEFAULT_LIMIT, ExpiryReport, expire_holds};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// The most holds to release this run, from any invocation payload (a
/// schedule delivers its own event shape; only `limit` matters here).
pub fn limit_of(payload: &Value) -> Result<u32, Error> {
    match payload.get("limit") {
        None | Some(Value::Null) => Ok(DEFAULT_LIMIT),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| "limit must be a positive integer".into()),
    }
}

pub async fn handler(app: &App, event: LambdaEvent<Value>) -> Result<ExpiryReport, Error> {
    let limit = limit_of(&event.payload)?;
    let report = expire_holds(app, &event.context.request_id, limit).await?;
    tracing::info!(
        expired = report.expired,
        already_settled = report.already_settled,
        failed = report.failed,
        more = report.more,
        "expired holds released"
    );
    Ok(report)
}
