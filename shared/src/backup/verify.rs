//! The checks of a restored table: its item count, the ledger and every
//! tenant's audit chain, run against the RESTORED copy.

use crate::app::App;
use crate::error::AppError;
use crate::store::census::census;
use serde::Serialize;
use serde_json::{Value, json};

/// Parallel-scan segments of a restored table's item count.
const CENSUS_SEGMENTS: u32 = 4;

/// One verification of a restored table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: Value,
}

/// Re-applies the erasure list to `restored` (before anything else reads
/// it) and the check that proves it: no erased person has a key left there.
pub async fn reapply_erasures(
    app: &App,
    restored: &str,
) -> Result<(crate::privacy::erasure::Reapplied, Check), AppError> {
    let reapplied = crate::privacy::erasure::reapply(app, restored).await?;
    let check = Check { name: "erasures".into(), ok: reapplied.ok(), detail: json!(reapplied) };
    Ok((reapplied, check))
}

/// Runs every check against `restored`: the item count window, the ledger,
/// and the audit chain of every tenant found on the restored table.
pub async fn verify_restored(
    app: &App,
    restored: &str,
    expected_items: Option<i64>,
) -> Result<Vec<Check>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut checks = Vec::new();
    let found = census(dynamodb, restored, CENSUS_SEGMENTS).await?;
    let tolerance = app.config.backup.drill_count_tolerance_percent;
    let count_ok = match expected_items.map(u64::try_from) {
        Some(Ok(expected)) => super::retention::count_within_window(expected, found.items, tolerance),
        _ => found.items > 0,
    };
    checks.push(Check {
        name: "item_count".into(),
        ok: count_ok,
        detail: json!({ "expected": expected_items, "restored": found.items, "tolerance_percent": tolerance }),
    });
    checks.extend(verify_tenants(app, restored, &found.tenants).await?);
    Ok(checks)
}

/// The domain verifications of a restored table: the ledger (Σ = 0 per
/// currency, stored balances = replayed balances) and the audit chain of every
/// tenant found on it.
async fn verify_tenants(
    app: &App,
    restored: &str,
    tenants: &std::collections::BTreeSet<String>,
) -> Result<Vec<Check>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut checks = Vec::new();
    let ledger = crate::ledger::verify::verify_ledger(dynamodb, restored, None, None).await?;
    checks.push(Check { name: "ledger".into(), ok: ledger.ok, detail: json!(ledger) });
    let mut broken = Vec::new();
    let mut entries = 0u64;
    for tenant in tenants {
        let Ok(id) = crate::tenant::TenantId::parse(tenant) else { continue };
        let report = crate::audit::trust::verify_restored(app, restored, &id).await?;
        entries += report.entries_checked;
        if !report.ok {
            broken.push(json!({ "tenant": tenant, "report": report }));
        }
    }
    checks.push(Check {
        name: "audit_chains".into(),
        ok: broken.is_empty(),
        detail: json!({ "tenants": tenants.len(), "entries_checked": entries, "broken": broken }),
    });
    Ok(checks)
}
