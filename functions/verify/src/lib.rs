//! The `verify` job (scheduled, or invoked with `{"tenant_id": "..."}`):
//! replays the ledger and reports drift as JSON.

use caas::App;
use caas::ledger::verify::{LedgerReport, emit_metrics, verify_ledger};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn handler(app: &App, event: LambdaEvent<Value>) -> Result<LedgerReport, Error> {
    // A schedule delivers its own event shape; only `tenant_id` matters here.
    let tenant = match event.payload.get("tenant_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => Some(caas::tenant::TenantId::parse(raw)?),
        Some(_) => return Err("tenant_id must be a string".into()),
    };
    let report = verify_ledger(&app.clients.dynamodb, &app.config.table_name, tenant.as_ref()).await?;
    emit_metrics(&report, app.now());
    if report.ok {
        tracing::info!(accounts = report.accounts_checked, entries = report.entries_checked, "ledger verified");
    } else {
        tracing::error!(
            drifted_accounts = report.drift.len(),
            unbalanced = report.unbalanced_transactions.len(),
            "ledger drift detected"
        );
    }
    Ok(report)
}
