//! The `retention` job (scheduled daily; any payload): deletes the records
//! past their tenant's retention (expired sessions and idempotency records
//! TTL has not deleted yet, published outbox items, payment events) and the
//! audit entries past retention below a signed checkpoint; reports what it
//! deleted.

use caas::App;
use caas::privacy::retention::{RetentionReport, run};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn handler(app: &App, _event: LambdaEvent<Value>) -> Result<RetentionReport, Error> {
    Ok(run(app).await?)
}
