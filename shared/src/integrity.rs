//! The integrity check run by the `verify` job: the ledger replay (balances,
//! Σ = 0 per currency) and every tenant's audit hash chain against its signed
//! checkpoints, signing a new checkpoint of each chain that holds.

use crate::App;
use crate::audit::ChainReport;
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

/// Verifies `tenant` (or every tenant with a chain or a checkpoint) in the
/// app's table.
pub async fn verify(app: &App, tenant: Option<&TenantId>) -> Result<IntegrityReport, AppError> {
    let ledger =
        verify_ledger(&app.clients.dynamodb, &app.config.table_name, tenant, Some(app.now())).await?;
    let tenants = match tenant {
        Some(tenant) => vec![tenant.clone()],
        None => crate::audit::trust::tenants(app).await?,
    };
    let mut audit = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        let chain = crate::audit::trust::verify_and_checkpoint(app, tenant).await?;
        audit.push(TenantChain { tenant_id: tenant.to_string(), chain });
    }
    let ok = ledger.ok && audit.iter().all(|c| c.chain.ok);
    Ok(IntegrityReport { ok, ledger, audit })
}

/// The report as CloudWatch metrics (EMF); the alarms in template.yaml watch
/// `LedgerDriftAccounts` (totals that disagree with the entries, a
/// `spendable` that disagrees with the totals, or a hot account's shards that
/// disagree with it), `LedgerPaymentMismatches` and `AuditChainsBroken`.
pub fn emit_metrics(report: &IntegrityReport, at: time::OffsetDateTime) {
    let ledger = &report.ledger;
    let off_balance =
        ledger.currency_totals.iter().filter(|t| t.posted_sum != 0 || t.pending_difference != 0).count();
    crate::metrics::MetricSet::service("verify")
        // Accounts with totals beyond i64, or whose spendable disagrees with
        // their totals, are drifted too: their totals cannot be trusted.
        .count(
            "LedgerDriftAccounts",
            (ledger.drift.len()
                + ledger.out_of_range.len()
                + ledger.spendable_mismatch.len()
                + ledger.shard_mismatch.len()) as u64,
        )
        .count("LedgerPaymentMismatches", ledger.payment_mismatch.len() as u64)
        .count("LedgerAccountsOutOfRange", ledger.out_of_range.len() as u64)
        .count("LedgerUnbalancedTransactions", ledger.unbalanced_transactions.len() as u64)
        .count("LedgerNonZeroCurrencySums", off_balance as u64)
        .count("LedgerAccountsChecked", ledger.accounts_checked as u64)
        .count("AuditChainsBroken", report.broken_chains().count() as u64)
        .count("AuditChainsChecked", report.audit.len() as u64)
        .emit(at);
}
