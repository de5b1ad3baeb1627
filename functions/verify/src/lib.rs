//! The `verify` job (scheduled, or invoked with `{"tenant_id": "..."}`):
//! replays the ledger and re-hashes the audit chains against their signed
//! checkpoints, signing a new one of each chain that holds; reports JSON and
//! metrics.

use caas::App;
use caas::integrity::{IntegrityReport, emit_metrics, verify};
use caas::tenant::TenantId;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// The tenant to verify, from any invocation payload: a schedule delivers its
/// own event shape, and only `tenant_id` matters here (absent: all tenants).
pub fn tenant_of(payload: &Value) -> Result<Option<TenantId>, Error> {
    match payload.get("tenant_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => Ok(Some(TenantId::parse(raw)?)),
        Some(_) => Err("tenant_id must be a string".into()),
    }
}

pub async fn handler(app: &App, event: LambdaEvent<Value>) -> Result<IntegrityReport, Error> {
    let tenant = tenant_of(&event.payload)?;
    let report = verify(app, tenant.as_ref()).await?;
    emit_metrics(&report, app.now());
    if report.ok {
        tracing::info!(
            accounts = report.ledger.accounts_checked,
            chains = report.audit.len(),
            "ledger and audit verified"
        );
    } else {
        tracing::error!(
            drifted_accounts = report.ledger.drift.len(),
            unbalanced = report.ledger.unbalanced_transactions.len(),
            broken_chains = report.broken_chains().count(),
            "integrity check failed"
        );
    }
    Ok(report)
}
