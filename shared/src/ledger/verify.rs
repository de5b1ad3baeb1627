//! Ledger replay and drift detection (the seeds' DriftVerifier): recompute
//! every account's totals from its immutable entries, compare with the stored
//! totals, check every transaction is balanced and every tenant's balances sum
//! to zero per currency.

use super::{Balances, Delta, is_balanced};
use crate::error::AppError;
use crate::store::ledger::{self as ledger_store, OutOfRange, StoredAccount};
use crate::tenant::TenantId;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountDrift {
    pub tenant_id: String,
    pub account_id: String,
    pub stored: Balances,
    pub replayed: Balances,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrencyTotal {
    pub tenant_id: String,
    pub currency: String,
    /// Σ posted balances: zero when the ledger is consistent. Summed exactly
    /// (i128), reported clamped to i64: a sum that far from zero is non-zero either way.
    pub posted_sum: i64,
    /// Σ pending debits − Σ pending credits: zero as well.
    pub pending_difference: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerReport {
    pub ok: bool,
    pub tenants_checked: usize,
    pub accounts_checked: usize,
    pub entries_checked: usize,
    pub transactions_checked: usize,
    pub drift: Vec<AccountDrift>,
    /// Accounts with a stored total beyond i64, or whose entries replay beyond it.
    pub out_of_range: Vec<OutOfRange>,
    /// Accounts whose stored `spendable` is not `available + overdraft_limit`
    /// (the overdraft condition reads it; legacy accounts without a limit
    /// have none to check).
    pub spendable_mismatch: Vec<String>,
    pub unbalanced_transactions: Vec<String>,
    pub currency_totals: Vec<CurrencyTotal>,
}

/// Replays the ledger of `tenant` (or of every tenant) in `table`. The table is
/// explicit so the backup drill can verify a restored copy.
pub async fn verify_ledger(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: Option<&TenantId>,
) -> Result<LedgerReport, AppError> {
    let tenants = match tenant {
        Some(tenant) => vec![tenant.to_string()],
        None => ledger_store::tenants_with_accounts(dynamodb, table).await?,
    };
    let mut report = LedgerReport::default();
    for tenant in &tenants {
        verify_tenant(dynamodb, table, tenant, &mut report).await?;
    }
    report.tenants_checked = tenants.len();
    report.ok = report.drift.is_empty()
        && report.out_of_range.is_empty()
        && report.spendable_mismatch.is_empty()
        && report.unbalanced_transactions.is_empty()
        && report.currency_totals.iter().all(|t| t.posted_sum == 0 && t.pending_difference == 0);
    Ok(report)
}

async fn verify_tenant(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    report: &mut LedgerReport,
) -> Result<(), AppError> {
    let mut transactions: BTreeMap<String, Vec<Delta>> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for account_id in ledger_store::tenant_account_ids(dynamodb, table, tenant).await? {
        let (account, entries) =
            ledger_store::account_with_entries(dynamodb, table, tenant, &account_id).await?;
        for entry in &entries {
            transactions.entry(entry.tx_id.clone()).or_default().push(entry.delta);
        }
        report.entries_checked += entries.len();
        let account = match account {
            None => continue,
            Some(StoredAccount::OutOfRange(out_of_range)) => {
                report.accounts_checked += 1;
                report.out_of_range.push(out_of_range);
                continue;
            }
            Some(StoredAccount::Valid(account)) => account,
        };
        report.accounts_checked += 1;
        let replayed = entries.iter().try_fold(Balances::default(), |balances, e| balances.apply(&e.delta));
        let Some(replayed) = replayed else {
            report.out_of_range.push(OutOfRange {
                account_id: account.account_id.clone(),
                attribute: "entries".to_owned(),
                value: "replayed totals beyond i64".to_owned(),
            });
            continue;
        };
        let stored = account.balances;
        if stored != replayed {
            report.drift.push(AccountDrift {
                tenant_id: tenant.to_owned(),
                account_id: account.account_id.clone(),
                stored,
                replayed,
            });
        }
        let expected = account.stored_overdraft_limit.map(|limit| stored.available.checked_add(limit));
        if expected.is_some_and(|spendable| spendable != account.spendable) {
            report.spendable_mismatch.push(account.account_id.clone());
        }
        let total = totals.entry(account.currency.clone()).or_default();
        total.0 += i128::from(stored.credits_posted) - i128::from(stored.debits_posted);
        total.1 += i128::from(stored.debits_pending) - i128::from(stored.credits_pending);
    }
    report.transactions_checked += transactions.len();
    report.unbalanced_transactions.extend(
        transactions
            .iter()
            .filter(|(_, deltas)| deltas.len() != 2 || !is_balanced(deltas.iter()))
            .map(|(tx_id, _)| tx_id.clone()),
    );
    let clamp = |sum: i128| i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX });
    report.currency_totals.extend(totals.into_iter().map(|(currency, (posted_sum, pending_difference))| {
        CurrencyTotal {
            tenant_id: tenant.to_owned(),
            currency,
            posted_sum: clamp(posted_sum),
            pending_difference: clamp(pending_difference),
        }
    }));
    Ok(())
}
