//! The expiry of holds: a scheduled job releases every authorization whose
//! `capture_before` has passed, through the ledger like a void (the
//! `payment.expired` event, the pending balances released, status `expired`).
//!
//! It finds them with a range query per shard of the sparse expiring-holds
//! index ([`crate::store::payments`]), never a scan. Each release is one
//! transaction conditional on the version read and on the deadline having
//! passed, so a capture racing it (conditional on the deadline being ahead)
//! and the release cannot both commit, and a repeated or concurrent run
//! releases nothing twice: it is idempotent. A released payment leaves the
//! index, so a run cut short (by its `limit` or a crash) is resumed by the next.

use super::Payment;
use super::movement::{Change, Scope, record_movement};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::payments::{self as payment_store, Deadline, EXPIRY_SHARDS};
use crate::store::tx::TxError;
use crate::tenant::TenantId;
use serde::Serialize;

/// Holds read per index page.
const PAGE: i32 = 100;
/// The most holds one run releases unless told otherwise.
pub const DEFAULT_LIMIT: u32 = 1_000;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryReport {
    /// Holds released (each one `payment.expired` event).
    pub expired: u32,
    /// Listed but changed since (captured, voided, released by another run):
    /// the transition's condition refused it.
    pub already_settled: u32,
    /// Holds that could not be released (logged; the next run tries again).
    pub failed: u32,
    /// The run stopped at its limit: more expired holds may be waiting.
    pub more: bool,
}

/// Releases up to `limit` expired holds.
pub async fn expire_holds(app: &App, correlation_id: &str, limit: u32) -> Result<ExpiryReport, AppError> {
    let now = app.now();
    let at = rfc3339(now);
    let table = &app.config.table_name;
    let mut report = ExpiryReport::default();
    for shard in 0..EXPIRY_SHARDS {
        let mut after = None;
        loop {
            let (holds, next) =
                payment_store::expired_holds(&app.clients.dynamodb, table, (shard, &at), PAGE, after).await?;
            for payment in holds {
                if report.expired + report.already_settled + report.failed >= limit {
                    report.more = true;
                    return Ok(report);
                }
                match release(app, correlation_id, &payment, now).await {
                    Ok(()) => report.expired += 1,
                    Err(Released::Settled) => report.already_settled += 1,
                    Err(Released::Failed(error)) => {
                        tracing::warn!(payment_id = %payment.payment_id, %error, "hold not released");
                        report.failed += 1;
                    }
                }
            }
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
    }
    Ok(report)
}

enum Released {
    Settled,
    Failed(AppError),
}

/// One hold's release: the void's ledger writes and the payment's next
/// version, conditional on its deadline having passed.
async fn release(
    app: &App,
    correlation_id: &str,
    payment: &Payment,
    now: time::OffsetDateTime,
) -> Result<(), Released> {
    let at = rfc3339(now);
    let Ok(transition) = payment.expire(&at) else { return Err(Released::Settled) };
    let tenant = TenantId::parse(&payment.tenant_id)
        .map_err(|e| Released::Failed(AppError::Internal(e.to_string())))?;
    let table = &app.config.table_name;
    let scope = Scope { table, correlation_id, tenant: &tenant, caller: None, now };
    let tx = record_movement(&scope, &Change::from(&transition), None)
        .and_then(|tx| {
            Ok(tx.push(payment_store::transition(table, &transition.next, Deadline::Passed(&at))?))
        })
        .map_err(Released::Failed)?;
    tx.commit(&app.clients.dynamodb).await.map_err(|error| match error {
        TxError::Cancelled(_) if error.failed(crate::store::labels::PaymentLabel::Payment).is_some() => {
            Released::Settled
        }
        other => Released::Failed(other.into_app_error()),
    })
}
