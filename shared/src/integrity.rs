//! The integrity check run by the `verify` job and by restore drills: the
//! ledger replay (balances, Σ = 0 per currency) and every tenant's audit hash
//! chain, against any table (the live one or a restored copy).

use crate::audit::{ChainReport, verify_chain};
use crate::error::AppError;
use crate::ledger::verify::{LedgerReport, verify_ledger};
use crate::tenant::TenantId;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TenantChain {
    pub tenant_id: String,
    #[serde(flatten)]
    pub chain: ChainReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntegrityReport {
    pub ok: bool,
    pub ledger: LedgerReport,
    pub audit: Vec<TenantChain>,
}

impl IntegrityReport {
    pub fn broken_chains(&self) -> impl Iterator<Item = &TenantChain> {
        self.audit.iter().filter(|c| !c.chain.ok)
    }
}

/// Verifies `tenant` (or every tenant found in `table`).
pub async fn verify(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: Option<&TenantId>,
    now: time::OffsetDateTime,
) -> Result<IntegrityReport, AppError> {
    let ledger = verify_ledger(dynamodb, table, tenant, Some(now)).await?;
    let tenants = match tenant {
        Some(tenant) => vec![tenant.clone()],
        None => crate::store::audit::tenants_with_chains(dynamodb, table)
            .await?
            .iter()
            .filter_map(|t| TenantId::parse(t).ok())
            .collect(),
    };
    let mut audit = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        let chain = verify_chain(dynamodb, table, tenant).await?;
        audit.push(TenantChain { tenant_id: tenant.to_string(), chain });
    }
    let ok = ledger.ok && audit.iter().all(|c| c.chain.ok);
    Ok(IntegrityReport { ok, ledger, audit })
}

/// The report as CloudWatch metrics (EMF); the alarms in template.yaml watch
/// `LedgerDriftAccounts` (totals that disagree with the entries, or a
/// `spendable` that disagrees with the totals) and `AuditChainsBroken`.
pub fn emit_metrics(report: &IntegrityReport, at: time::OffsetDateTime) {
    let ledger = &report.ledger;
    let off_balance =
        ledger.currency_totals.iter().filter(|t| t.posted_sum != 0 || t.pending_difference != 0).count();
    crate::metrics::MetricSet::service("verify")
        // Accounts with totals beyond i64, or whose spendable disagrees with
        // their totals, are drifted too: their totals cannot be trusted.
        .count(
            "LedgerDriftAccounts",
            (ledger.drift.len() + ledger.out_of_range.len() + ledger.spendable_mismatch.len()) as u64,
        )
        .count("LedgerAccountsOutOfRange", ledger.out_of_range.len() as u64)
        .count("LedgerUnbalancedTransactions", ledger.unbalanced_transactions.len() as u64)
        .count("LedgerNonZeroCurrencySums", off_balance as u64)
        .count("LedgerAccountsChecked", ledger.accounts_checked as u64)
        .count("AuditChainsBroken", report.broken_chains().count() as u64)
        .count("AuditChainsChecked", report.audit.len() as u64)
        .emit(at);
}
