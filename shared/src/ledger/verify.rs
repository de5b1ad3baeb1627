//! Ledger replay and drift detection (the seeds' DriftVerifier): recompute
//! every account's totals from its immutable entries, compare with the stored
//! totals, check every transaction is balanced and every tenant's balances sum
//! to zero per currency. A hot account's stored totals are its item's and
//! its credit shards' summed; each shard must agree with its account. Every
//! payment's totals (authorized, captured, refunded, released) and each
//! leg's must be what its ledger entries moved.

use super::{Balances, Delta, is_balanced, sum_balances};
use crate::error::AppError;
use crate::payments::{Payment, PaymentStatus};
use crate::store::ledger::{
    self as ledger_store, AccountHistory, AccountRecord, EntryRecord, OutOfRange, ShardRecord,
    SnapshotRecord, StoredAccount,
};
use crate::store::payments as payment_store;
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
    /// Hot accounts whose credit shards disagree with the account: a shard
    /// missing or beyond its count, a debit on one, another currency or status.
    pub shard_mismatch: Vec<String>,
    pub payments_checked: usize,
    /// Payments whose totals or legs disagree with their ledger entries (or
    /// whose item is missing while entries name it).
    pub payment_mismatch: Vec<String>,
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
        && report.shard_mismatch.is_empty()
        && report.payment_mismatch.is_empty()
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
    // Per payment, what its entries moved per (account, movement).
    let mut payments: BTreeMap<String, Moved> = BTreeMap::new();
    for account_id in ledger_store::tenant_account_ids(dynamodb, table, tenant).await? {
        let AccountHistory { account, shards, entries, snapshots } =
            ledger_store::account_with_entries(dynamodb, table, tenant, &account_id).await?;
        check_snapshots(dynamodb, table, (&entries, &snapshots), write_before, report).await?;
        for entry in &entries {
            let transaction = transactions.entry(entry.tx_id.clone()).or_default();
            transaction.0.push(entry.delta);
            transaction.1.push(entry.postings.unwrap_or(LEGACY_POSTINGS));
            let moved = payments.entry(entry.payment_id.clone()).or_default();
            add(moved, (&entry.account_id, &entry.movement), &entry.delta);
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
        if !shards_agree(&account, &shards) {
            report.shard_mismatch.push(account.account_id.clone());
        }
        let all = std::iter::once(&account.balances).chain(shards.iter().map(|s| &s.balances));
        let Some(stored) = sum_balances(all) else {
            report.out_of_range.push(OutOfRange {
                account_id: account.account_id.clone(),
                attribute: "shards".to_owned(),
                value: "the sum of its balance shards is beyond i64".to_owned(),
            });
            continue;
        };
        if stored != replayed {
            report.drift.push(AccountDrift {
                tenant_id: tenant.to_owned(),
                account_id: account.account_id.clone(),
                stored,
                replayed,
            });
        }
        // `spendable` is shard 0's: the account item's own `available` plus the limit.
        let expected =
            account.stored_overdraft_limit.map(|limit| account.balances.available.checked_add(limit));
        if expected.is_some_and(|spendable| spendable != account.spendable) {
            report.spendable_mismatch.push(account.account_id.clone());
        }
        let total = totals.entry(account.currency.clone()).or_default();
        total.0 += i128::from(stored.credits_posted) - i128::from(stored.debits_posted);
        total.1 += i128::from(stored.debits_pending) - i128::from(stored.credits_pending);
    }
    for (payment_id, moved) in &payments {
        let payment = payment_store::read(dynamodb, table, tenant, payment_id).await?;
        report.payments_checked += 1;
        if payment.is_none_or(|payment| expected_moves(&payment) != nonzero(moved)) {
            report.payment_mismatch.push(payment_id.clone());
        }
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

/// What a payment's entries moved: the sum of their deltas per (account, movement).
type Moved = BTreeMap<(String, String), Delta>;

fn add(moved: &mut Moved, (account_id, movement): (&str, &str), delta: &Delta) {
    let sum = moved.entry((account_id.to_owned(), movement.to_owned())).or_default();
    sum.debits_pending = sum.debits_pending.saturating_add(delta.debits_pending);
    sum.credits_pending = sum.credits_pending.saturating_add(delta.credits_pending);
    sum.debits_posted = sum.debits_posted.saturating_add(delta.debits_posted);
    sum.credits_posted = sum.credits_posted.saturating_add(delta.credits_posted);
}

fn nonzero(moved: &Moved) -> Moved {
    moved.iter().filter(|(_, d)| **d != Delta::default()).map(|(k, d)| (k.clone(), *d)).collect()
}

/// What a payment's ledger entries must have moved, from its own totals:
/// the hold of its amount on the payer and of each leg's on its payee; a
/// capture (captured or refunded since) posting `captured_amount` and each
/// leg's captured part and releasing the whole hold; a void or expiry
/// releasing it; refunds of `refunded_amount` and each leg's refunded part.
pub fn expected_moves(payment: &Payment) -> Moved {
    let mut moved = Moved::new();
    let payer = payment.payer_account_id.as_str();
    let legs = payment.legs();
    let zero = Delta::default();
    add(&mut moved, (payer, "authorize"), &Delta { debits_pending: payment.amount, ..zero });
    for leg in &legs {
        add(&mut moved, (&leg.account_id, "authorize"), &Delta { credits_pending: leg.amount, ..zero });
    }
    match payment.status {
        PaymentStatus::Authorized => {}
        PaymentStatus::Voided | PaymentStatus::Expired => {
            add(&mut moved, (payer, "void"), &Delta { debits_pending: -payment.amount, ..zero });
            for leg in &legs {
                add(&mut moved, (&leg.account_id, "void"), &Delta { credits_pending: -leg.amount, ..zero });
            }
        }
        PaymentStatus::Captured | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded => {
            let capture =
                Delta { debits_pending: -payment.amount, debits_posted: payment.captured_amount, ..zero };
            add(&mut moved, (payer, "capture"), &capture);
            add(&mut moved, (payer, "refund"), &Delta { credits_posted: payment.refunded_amount, ..zero });
            for leg in &legs {
                let capture =
                    Delta { credits_pending: -leg.amount, credits_posted: leg.captured_amount, ..zero };
                add(&mut moved, (&leg.account_id, "capture"), &capture);
                add(
                    &mut moved,
                    (&leg.account_id, "refund"),
                    &Delta { debits_posted: leg.refunded_amount, ..zero },
                );
            }
        }
    }
    nonzero(&moved)
}

/// A hot account's credit shards are exactly 1..shards, each only credited
/// (`available == credits_posted`, no debit), in the account's currency and state.
fn shards_agree(account: &AccountRecord, shards: &[ShardRecord]) -> bool {
    let numbers: Vec<u32> = shards.iter().map(|s| s.shard).collect();
    numbers == (1..account.shards.max(1)).collect::<Vec<_>>()
        && shards.iter().all(|s| {
            let b = &s.balances;
            b.debits_pending == 0
                && b.debits_posted == 0
                && b.available == b.credits_posted
                && s.currency == account.currency
                && s.status == account.status
                && s.account_id == account.account_id
        })
}
