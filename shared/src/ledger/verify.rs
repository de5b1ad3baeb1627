//! Ledger replay and drift detection (the seeds' DriftVerifier): recompute
//! every account's totals from its immutable entries, compare with the stored
//! totals, check every transaction is balanced and every tenant's balances sum
//! to zero per currency.

use super::{Balances, Delta, is_balanced};
use crate::error::AppError;
use crate::store::ledger::{self as ledger_store, EntryRecord, OutOfRange, SnapshotRecord, StoredAccount};
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
    /// Balance snapshots (`<account id>@<day>`) that disagree with the entries.
    pub snapshot_mismatch: Vec<String>,
    /// Snapshots written by this run (days that had entries and have ended).
    pub snapshots_written: usize,
}

/// How long after midnight a day's snapshot waits: a transaction made just
/// before it may still be committing (a handler's timeout at most).
pub const SNAPSHOT_GRACE: time::Duration = time::Duration::minutes(15);

/// An entry's day (UTC, `YYYY-MM-DD`) and that day's end (epoch ms), from
/// its transaction's id.
fn day_of(entry: &EntryRecord) -> Option<(String, i64)> {
    let at = crate::clock::from_epoch_ms(crate::ids::time_of(&entry.tx_id)?)?;
    let end = at.date().next_day()?.midnight().assume_utc();
    Some((at.date().to_string(), crate::clock::epoch_ms(end)))
}

/// Per day that had entries (oldest first): the day, its end (epoch ms), and
/// the totals and entry count at its end. Entries come in key order: by time.
fn closings(entries: &[EntryRecord]) -> Option<Vec<(String, i64, Balances, u64)>> {
    let mut days: Vec<(String, i64, Balances, u64)> = Vec::new();
    let (mut totals, mut count) = (Balances::default(), 0u64);
    for entry in entries {
        let (day, end) = day_of(entry)?;
        totals = totals.apply(&entry.delta)?;
        count += 1;
        match days.last_mut() {
            Some(last) if last.0 == day => (last.2, last.3) = (totals, count),
            _ => days.push((day, end, totals, count)),
        }
    }
    Some(days)
}

/// Checks the account's snapshots against its entries and, with `write_before`,
/// writes the missing ones of the days that ended before it.
async fn check_snapshots(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    (entries, snapshots): (&[EntryRecord], &[SnapshotRecord]),
    write_before: Option<i64>,
    report: &mut LedgerReport,
) -> Result<(), AppError> {
    let Some(days) = closings(entries) else { return Ok(()) };
    for snapshot in snapshots {
        // The totals at the end of its day: those of the last day with entries up to it.
        let expected = days.iter().rev().find(|(day, ..)| *day <= snapshot.day);
        let (balances, count) = expected.map_or((Balances::default(), 0), |(_, _, b, n)| (*b, *n));
        if (balances, count) != (snapshot.balances, snapshot.entries) {
            report.snapshot_mismatch.push(format!("{}@{}", snapshot.account_id, snapshot.day));
        }
    }
    let Some(before) = write_before else { return Ok(()) };
    let Some(first) = entries.first() else { return Ok(()) };
    for (day, end, balances, count) in days.iter().filter(|(_, end, ..)| *end <= before) {
        if snapshots.iter().any(|s| s.day == *day) {
            continue;
        }
        let snapshot = SnapshotRecord {
            tenant_id: first.tenant_id.clone(),
            account_id: first.account_id.clone(),
            day: day.clone(),
            balances: *balances,
            entries: *count,
        };
        let _ = end;
        ledger_store::insert_snapshot(dynamodb, table, &snapshot).await?;
        report.snapshots_written += 1;
    }
    Ok(())
}

/// The postings of every ledger transaction written before split payments.
const LEGACY_POSTINGS: u32 = 2;

/// Every entry of the transaction is there: as many as each of them says it
/// has (a payment to one payee: 2; a split payment: 1 + its legs).
fn is_whole(deltas: &[Delta], counts: &[u32]) -> bool {
    counts.iter().all(|count| usize::try_from(*count).is_ok_and(|count| count == deltas.len()))
}

/// Replays the ledger of `tenant` (or of every tenant) in `table`. The table is
/// explicit so the backup drill can verify a restored copy. With `now`, it
/// also writes the balance snapshots of the days that ended before `now`
/// (less [`SNAPSHOT_GRACE`]) and lack one; it always checks those there are.
pub async fn verify_ledger(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: Option<&TenantId>,
    now: Option<time::OffsetDateTime>,
) -> Result<LedgerReport, AppError> {
    let write_before = now.map(|now| crate::clock::epoch_ms(now - SNAPSHOT_GRACE));
    let tenants = match tenant {
        Some(tenant) => vec![tenant.to_string()],
        None => ledger_store::tenants_with_accounts(dynamodb, table).await?,
    };
    let mut report = LedgerReport::default();
    for tenant in &tenants {
        verify_tenant(dynamodb, table, tenant, write_before, &mut report).await?;
    }
    report.tenants_checked = tenants.len();
    report.ok = report.drift.is_empty()
        && report.out_of_range.is_empty()
        && report.spendable_mismatch.is_empty()
        && report.unbalanced_transactions.is_empty()
        && report.snapshot_mismatch.is_empty()
        && report.currency_totals.iter().all(|t| t.posted_sum == 0 && t.pending_difference == 0);
    Ok(report)
}

async fn verify_tenant(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    write_before: Option<i64>,
    report: &mut LedgerReport,
) -> Result<(), AppError> {
    // Per ledger transaction: its entries' deltas and the posting counts they name.
    let mut transactions: BTreeMap<String, (Vec<Delta>, Vec<u32>)> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for account_id in ledger_store::tenant_account_ids(dynamodb, table, tenant).await? {
        let (account, entries, snapshots) =
            ledger_store::account_with_entries(dynamodb, table, tenant, &account_id).await?;
        check_snapshots(dynamodb, table, (&entries, &snapshots), write_before, report).await?;
        for entry in &entries {
            let transaction = transactions.entry(entry.tx_id.clone()).or_default();
            transaction.0.push(entry.delta);
            transaction.1.push(entry.postings.unwrap_or(LEGACY_POSTINGS));
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
            .filter(|(_, (deltas, counts))| !is_whole(deltas, counts) || !is_balanced(deltas.iter()))
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
