//! Ledger accounts, their per-account entries and ledger transactions.
//! Entries live in the account's partition (`ENTRY#<tx id>`, time-ordered),
//! so an account and its history are read with one strongly consistent query.
//!
//! An account carries its `owner` (immutable) and its `overdraft_limit`, and
//! beside `available` the derived `spendable = available + overdraft_limit`,
//! moved by the same `ADD` as `available`: conditions cannot do arithmetic,
//! so "available may not fall below −overdraft_limit" is the condition
//! `spendable >= amount` on the update that debits. Accounts stored before
//! owners and limits existed ([`super::account_layouts`]) have neither
//! attribute until the migration adds them; until then they keep the old
//! rule, with the documented default limit for overdraft accounts.
//!
//! A hot account of `shards` K > 1 ([`crate::ledger::MAX_SHARDS`]) keeps its
//! balance in K items of its partition: the account item (shard 0: every
//! debit, the overdraft rule, `spendable`) and K − 1 credit shards
//! (`ACCOUNT#SHARD#<k>`, kind `account_shard`), which only ever take credits
//! and releases of pending credits, carry the account's currency, owner and
//! status for their conditions, and whose totals add to the account's.
//! One consistent query (`begins_with(sk, "ACCOUNT")`) reads them all.
//! [`sweep`] moves the shards' posted credits into shard 0 in one
//! transaction, leaving every total of the account unchanged.

use super::account_layouts::{self, LEGACY_OVERDRAFT_LIMIT};
use super::labels::PaymentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use crate::ledger::{AccountStatus, Balances, Delta, sum_balances};
use crate::payments::ownership::Owner;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

/// The `kind` of account items.
const ACCOUNT_KIND: &str = account_layouts::KIND;
const ENTRY_KIND: &str = "ledger_entry";
const SNAPSHOT_KIND: &str = "balance_snapshot";
/// Snapshots' sort keys: the prefix, then the UTC day (`YYYY-MM-DD`) they close.
const SNAPSHOT_PREFIX: &str = "SNAP#";
/// Entries' sort keys: the prefix, then the ledger transaction id.
const ENTRY_PREFIX: &str = "ENTRY#";
const SHARD_KIND: &str = "account_shard";
/// The account item's sort key; shards' keys extend it, so one
/// `begins_with` query reads the account with its shards.
const ACCOUNT_SK: &str = "ACCOUNT";
const SHARD_PREFIX: &str = "ACCOUNT#SHARD#";

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    pub tenant_id: String,
    pub account_id: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub allow_overdraft: bool,
    /// Legacy accounts (no `owner`) read as tenant-owned, as the migration writes them.
    #[serde(default)]
    pub owner: Owner,
    /// Minor units `available` may go below zero; 0 without overdraft.
    /// Absent on legacy accounts: see [`AccountRecord::overdraft_limit`].
    #[serde(default, rename = "overdraft_limit", skip_serializing_if = "Option::is_none")]
    pub stored_overdraft_limit: Option<i64>,
    #[serde(flatten)]
    pub balances: Balances,
    /// `available + overdraft_limit`, what a debit may take (absent on legacy accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spendable: Option<i64>,
    /// Absent on accounts stored before states existed: active.
    #[serde(default)]
    pub status: AccountStatus,
    pub created_at: String,
    /// Balance shards (1: the account item alone, not stored).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub shards: u32,
}

/// A credit shard of a hot account (shards 1..K; shard 0 is the account
/// item). Its debits stay zero: `available == credits_posted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub tenant_id: String,
    pub account_id: String,
    pub shard: u32,
    pub currency: String,
    pub owner: Owner,
    #[serde(default)]
    pub status: AccountStatus,
    #[serde(flatten)]
    pub balances: Balances,
}

/// An account's item with its credit shards, as one query reads them.
#[derive(Debug, Clone)]
pub struct ShardedAccount {
    pub account: AccountRecord,
    pub shards: Vec<ShardRecord>,
}

impl ShardedAccount {
    /// The account's totals: its item's and its shards' (409 if beyond i64).
    pub fn balances(&self) -> Result<Balances, AppError> {
        sum_balances(std::iter::once(&self.account.balances).chain(self.shards.iter().map(|s| &s.balances)))
            .ok_or_else(|| OutOfRange::total(&self.account.account_id).into_app_error())
    }

    /// The account with its totals summed over its shards.
    pub fn summed(&self) -> Result<AccountRecord, AppError> {
        Ok(AccountRecord { balances: self.balances()?, ..self.account.clone() })
    }
}

impl AccountRecord {
    /// The limit in force: the stored one, or on a legacy account the one the
    /// migration will give it (the default for overdraft accounts, else 0).
    pub fn overdraft_limit(&self) -> i64 {
        self.stored_overdraft_limit.unwrap_or(if self.allow_overdraft { LEGACY_OVERDRAFT_LIMIT } else { 0 })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryRecord {
    pub tenant_id: String,
    pub account_id: String,
    pub tx_id: String,
    pub payment_id: String,
    pub movement: String,
    pub currency: String,
    #[serde(flatten)]
    pub delta: Delta,
    /// How many postings (entries) its ledger transaction has: 1 + the
    /// payment's payee legs. Absent on entries written before split
    /// payments, all of which had 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postings: Option<u32>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Posting {
    pub account_id: String,
    #[serde(flatten)]
    pub delta: Delta,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerTransactionRecord {
    pub tenant_id: String,
    pub tx_id: String,
    pub payment_id: String,
    pub movement: String,
    pub currency: String,
    pub postings: Vec<Posting>,
    pub created_at: String,
}

pub fn account_pk(tenant: &str, account_id: &str) -> String {
    tenant_pk(tenant, &format!("ACCOUNT#{account_id}"))
}

pub fn account_key(tenant: &str, account_id: &str) -> Item {
    key(account_pk(tenant, account_id), ACCOUNT_SK)
}

/// The key of balance shard `shard` (0: the account item itself).
pub fn shard_key(tenant: &str, account_id: &str, shard: u32) -> Item {
    match shard {
        0 => account_key(tenant, account_id),
        k => key(account_pk(tenant, account_id), &format!("{SHARD_PREFIX}{k:02}")),
    }
}

/// The index partition listing a tenant's accounts.
pub fn accounts_index_pk(tenant: &str) -> String {
    tenant_pk(tenant, "ACCOUNTS")
}

/// A new account in the current layout: its limit and `spendable` are
/// written explicitly (`spendable` = the balance plus the limit).
pub fn insert_account(table: &str, account: &AccountRecord) -> Result<Action<PaymentLabel>, AppError> {
    let limit = account.overdraft_limit();
    let spendable = account.balances.available.checked_add(limit);
    let account = AccountRecord {
        stored_overdraft_limit: Some(limit),
        spendable: Some(spendable.ok_or_else(|| AppError::Internal("overdraft limit out of range".into()))?),
        ..account.clone()
    };
    Keyed::new(account_pk(&account.tenant_id, &account.account_id), ACCOUNT_SK, ACCOUNT_KIND, &account)
        .indexed(accounts_index_pk(&account.tenant_id), &account.account_id)
        .version(account_layouts::SCHEMA_VERSION)
        .insert(table, PaymentLabel::Account)
}

/// A new account's credit shards (none unless `shards > 1`), empty, with its
/// currency, owner and status.
pub fn insert_shards(table: &str, account: &AccountRecord) -> Result<Vec<Action<PaymentLabel>>, AppError> {
    (1..account.shards)
        .map(|shard| {
            let record = ShardRecord {
                tenant_id: account.tenant_id.clone(),
                account_id: account.account_id.clone(),
                shard,
                currency: account.currency.clone(),
                owner: account.owner.clone(),
                status: account.status,
                balances: Balances::default(),
            };
            let sk = format!("{SHARD_PREFIX}{shard:02}");
            Keyed::new(account_pk(&account.tenant_id, &account.account_id), sk, SHARD_KIND, &record)
                .insert(table, PaymentLabel::Shard)
        })
        .collect()
}

/// Decodes the items of an account's `begins_with(sk, "ACCOUNT")` query.
fn sharded(items: Vec<Item>) -> Result<Option<ShardedAccount>, AppError> {
    let mut account = None;
    let mut shards = Vec::new();
    for item in items {
        match item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) {
            Some(ACCOUNT_KIND) => account = Some(decode_account(item)?),
            Some(SHARD_KIND) => shards.push(decode_shard(item)?),
            _ => {}
        }
    }
    Ok(account.map(|account| ShardedAccount { account, shards }))
}

fn decode_shard(item: Item) -> Result<ShardRecord, AppError> {
    if let Some(out_of_range) = OutOfRange::of(&item) {
        return Err(out_of_range.into_app_error());
    }
    from_item(item)
}

/// The account with its shards: one strongly consistent query of the
/// account's item and its shard items (never its entries).
pub async fn read_account(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
) -> Result<Option<ShardedAccount>, AppError> {
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :account)")
        .expression_attribute_values(":pk", AttributeValue::S(account_pk(tenant, account_id)))
        .expression_attribute_values(":account", AttributeValue::S(ACCOUNT_SK.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("read account", e))?;
    sharded(output.items.unwrap_or_default())
}

/// The transaction's actions that move every credit shard's posted credits
/// into shard 0 (label `account`), leaving the account's totals as they
/// were: each shard `ADD credits_posted -c, available -c` on the condition
/// that it still holds `c` (credits only ever add to it), shard 0 `ADD` the
/// sum to `credits_posted`, `available` and `spendable`, within i64. Empty
/// when no shard holds posted credits. Pending credits stay where their
/// holds will settle them.
pub fn sweep(table: &str, account: &ShardedAccount) -> Result<Vec<Action<PaymentLabel>>, AppError> {
    let tenant = &account.account.tenant_id;
    let id = &account.account.account_id;
    let mut actions = Vec::new();
    let mut sum = 0i64;
    for shard in account.shards.iter().filter(|s| s.balances.credits_posted > 0) {
        let c = shard.balances.credits_posted;
        sum = sum.checked_add(c).ok_or_else(|| OutOfRange::total(id).into_app_error())?;
        let expr = Expr::default().value(":c", value(c)?).value(":neg", value(-c)?);
        actions.push(Action::update(
            table,
            PaymentLabel::Shard,
            shard_key(tenant, id, shard.shard),
            "ADD credits_posted :neg, available :neg",
            Some("credits_posted >= :c AND available >= :c"),
            expr,
        )?);
    }
    if sum == 0 {
        return Ok(Vec::new());
    }
    let expr = Expr::default().value(":sum", value(sum)?).value(":bound", value(i64::MAX - sum)?);
    actions.push(Action::update(
        table,
        PaymentLabel::Account,
        account_key(tenant, id),
        "ADD credits_posted :sum, available :sum, spendable :sum",
        Some("attribute_exists(pk) AND credits_posted <= :bound AND available <= :bound"),
        expr,
    )?);
    Ok(actions)
}

/// The stored totals of an account (and `available`), by attribute name.
const BALANCE_ATTRIBUTES: [&str; 5] =
    ["debits_pending", "credits_pending", "debits_posted", "credits_posted", "available"];

/// A stored total outside i64: written before balance updates were bounded
/// (DynamoDB numbers hold 38 digits, so ADD went on past i64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutOfRange {
    pub account_id: String,
    pub attribute: String,
    /// The stored number, as DynamoDB returns it.
    pub value: String,
}

impl OutOfRange {
    /// An account whose shards sum beyond i64.
    fn total(account_id: &str) -> OutOfRange {
        OutOfRange {
            account_id: account_id.to_owned(),
            attribute: "shards".to_owned(),
            value: "the sum of its balance shards".to_owned(),
        }
    }

    fn of(item: &Item) -> Option<OutOfRange> {
        BALANCE_ATTRIBUTES.iter().find_map(|attribute| {
            let stored = item.get(*attribute)?.as_n().ok()?;
            stored.parse::<i64>().is_err().then(|| OutOfRange {
                account_id: item.get("account_id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                attribute: (*attribute).to_owned(),
                value: stored.clone(),
            })
        })
    }

    /// The API's answer: a conflict with the account's state, never a 500.
    pub fn into_app_error(self) -> AppError {
        AppError::Conflict(format!(
            "account {}: its {} ({}) is beyond what the ledger holds (at most 9223372036854775807 \
             minor units); the account takes no further movements, contact support",
            self.account_id, self.attribute, self.value
        ))
    }
}

/// An account item; a total beyond i64 answers 409 (see [`OutOfRange`]).
pub fn decode_account(item: Item) -> Result<AccountRecord, AppError> {
    if let Some(out_of_range) = OutOfRange::of(&item) {
        return Err(out_of_range.into_app_error());
    }
    from_item(item)
}

pub fn decode_entry(item: Item) -> Result<EntryRecord, AppError> {
    from_item(item)
}

/// What a refused balance update's item (an account or a shard) says about
/// why: whose it is, its state, and whether it is a hot account's shard 0.
#[derive(Debug, Clone, Deserialize)]
pub struct Holder {
    pub account_id: String,
    #[serde(default)]
    pub owner: Owner,
    #[serde(default)]
    pub status: AccountStatus,
    #[serde(default = "one")]
    pub shards: u32,
}

/// The holder of a balance item returned by a cancelled transaction.
pub fn holder(item: &Item) -> Option<Holder> {
    from_item(item.clone()).ok()
}

/// One account's side of a ledger movement.
#[derive(Debug, Clone, Copy)]
pub struct BalanceUpdate<'a> {
    /// The account's side ([`PaymentLabel::Payer`] or [`PaymentLabel::Payee`]).
    pub label: PaymentLabel,
    pub tenant: &'a str,
    pub account_id: &'a str,
    pub currency: &'a str,
    pub delta: Delta,
    /// The owner the account must have: the caller, when owning it is what
    /// permits the change (owners never change, so this pins what was decided).
    pub owner: Option<&'a Owner>,
    /// The balance shard it goes to: 0 (the account item) for every debit;
    /// a credit shard only for credits and releases of pending credits.
    pub shard: u32,
}

/// The overdraft rule when a debit of `:need` lowers the available balance:
/// the limit on accounts that have one; on legacy accounts the old rule with
/// the default limit (their `spendable` is meaningless until migrated).
const OVERDRAFT_RULE: &str = "((attribute_exists(overdraft_limit) AND spendable >= :need) \
     OR (attribute_not_exists(overdraft_limit) AND (available >= :need \
     OR (allow_overdraft = :yes AND available >= :legacy_need))))";

/// Applies a delta to an account's totals with ADD (no read-modify-write).
/// The condition checks the currency (and so existence), the owner when
/// given, bounds every total the update changes so it stays within i64
/// (`credits_posted <= :max - amount`), and, when the delta lowers the
/// available balance, the overdraft rule, atomically.
pub fn apply_delta(table: &str, change: &BalanceUpdate<'_>) -> Result<Action<PaymentLabel>, AppError> {
    let delta = &change.delta;
    let overflow = || AppError::Internal(format!("ledger delta out of range: {delta:?}"));
    let available = delta.available().ok_or_else(overflow)?;
    let mut terms = Vec::new();
    let mut conditions = vec!["currency = :currency".to_owned()];
    let mut expr = Expr::default().value(":currency", value(change.currency)?);
    for (attribute, amount) in delta.terms().ok_or_else(overflow)? {
        if amount == 0 {
            continue;
        }
        terms.push(format!("{attribute} :{attribute}"));
        expr = expr.value(&format!(":{attribute}"), value(amount)?);
        // The bound: the total after the ADD stays within i64.
        let (comparison, bound) = if amount > 0 {
            ("<=", i64::MAX - amount)
        } else {
            (">=", i64::MIN.checked_sub(amount).ok_or_else(overflow)?)
        };
        conditions.push(format!("{attribute} {comparison} :bound_{attribute}"));
        expr = expr.value(&format!(":bound_{attribute}"), value(bound)?);
    }
    if change.shard > 0 && (delta.is_debit() || available < 0 || delta.debits_pending != 0) {
        return Err(AppError::Internal("a debit on a credit shard".into()));
    }
    if available != 0 && change.shard == 0 {
        // `spendable` (available + overdraft limit) moves with `available`.
        terms.push("spendable :available".to_owned());
    }
    // The account's state: a closed account takes nothing, a frozen one no debit.
    let (state, status) = if delta.is_debit() {
        ("#status = :status", AccountStatus::Active)
    } else {
        ("#status <> :status", AccountStatus::Closed)
    };
    conditions.push(format!("(attribute_not_exists(#status) OR {state})"));
    expr = expr.name("#status", "status").value(":status", value(status)?);
    if let Some(owner) = change.owner {
        conditions.push("#owner = :owner".to_owned());
        expr = expr.name("#owner", "owner").value(":owner", value(owner)?);
    }
    if available < 0 {
        let need = available.checked_neg().ok_or_else(overflow)?;
        conditions.push(OVERDRAFT_RULE.to_owned());
        expr = expr
            .value(":yes", AttributeValue::Bool(true))
            .value(":need", value(need)?)
            .value(":legacy_need", value(need - LEGACY_OVERDRAFT_LIMIT)?);
    }
    let update = if terms.is_empty() {
        "SET currency = :currency".to_owned()
    } else {
        format!("ADD {}", terms.join(", "))
    };
    let key = shard_key(change.tenant, change.account_id, change.shard);
    Action::update(table, change.label, key, &update, Some(&conditions.join(" AND ")), expr)
}

/// Whether `delta` on the account stored as `old` (the item a cancelled
/// transaction returns) would take a total beyond i64: the bound of
/// [`apply_delta`] refused it, rather than the overdraft rule.
pub fn exceeds_range(old: &Item, delta: &Delta) -> bool {
    let Some(terms) = delta.terms() else { return true };
    terms.iter().filter(|(_, amount)| *amount != 0).any(|(attribute, amount)| {
        let stored = old.get(*attribute).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i128>().ok());
        stored.is_none_or(|stored| i64::try_from(stored + i128::from(*amount)).is_err())
    })
}

/// A change of an account's state or overdraft limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub status: Option<AccountStatus>,
    pub overdraft_limit: Option<i64>,
}

/// Why an [`AccountChange`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefused {
    Missing,
    /// Closed accounts stay closed and take no other change.
    Closed,
    /// Closing needs a zero balance and no pending holds (either way).
    NotSettled,
    /// Only overdraft accounts have a limit.
    NoOverdraft,
    /// The new limit is below the account's current overdraft (`-available`).
    BelowOverdraft(i64),
    /// A hot account: the change needs its shards (see [`change_account`]).
    Sharded,
}

/// The change as one atomic update of the account (label `account`), its
/// rules as the condition: the account exists and is not closed (closing a
/// closed one again is a no-op); closing needs `available`, `debits_pending`
/// and `credits_pending` all zero (so the posted balance is zero too); a
/// new limit needs an overdraft account whose `available >= -limit`, and
/// `spendable` follows from the balance at that moment. [`refusal`] tells a
/// failed condition apart from the account as it was.
///
/// Without `sharded` the update requires an account of one shard (a hot
/// account refuses it as [`ChangeRefused::Sharded`]: no extra read for the
/// others). With the hot account as read (after a [`sweep`], so shard 0
/// holds its posted credits), the update requires that many shards, and each
/// shard takes the new status (label `shard`), closing only when empty.
pub fn change_account(
    table: &str,
    tenant: &str,
    account_id: &str,
    change: &AccountChange,
    sharded: Option<&ShardedAccount>,
) -> Result<Vec<Action<PaymentLabel>>, AppError> {
    let mut sets = Vec::new();
    let mut conditions = vec!["attribute_exists(pk)".to_owned()];
    let mut shard_actions = Vec::new();
    match sharded {
        None => conditions.push("attribute_not_exists(shards)".to_owned()),
        Some(account) => {
            conditions.push("shards = :shards".to_owned());
            for shard in account.shards.iter().filter(|_| change.status.is_some()) {
                shard_actions.push(shard_status(table, tenant, account_id, shard.shard, change)?);
            }
        }
    }
    let mut expr = Expr::default().name("#status", "status");
    if change.status != Some(AccountStatus::Closed) || change.overdraft_limit.is_some() {
        conditions.push("(attribute_not_exists(#status) OR #status <> :closed)".to_owned());
        expr = expr.value(":closed", value(AccountStatus::Closed)?);
    }
    if let Some(status) = change.status {
        sets.push("#status = :new_status");
        expr = expr.value(":new_status", value(status)?);
        if status == AccountStatus::Closed {
            conditions
                .push("available = :zero AND debits_pending = :zero AND credits_pending = :zero".into());
            expr = expr.value(":zero", value(0)?);
        }
    }
    if let Some(limit) = change.overdraft_limit {
        sets.push("overdraft_limit = :limit, spendable = available + :limit");
        conditions.push("allow_overdraft = :yes AND available >= :floor".to_owned());
        expr = expr
            .value(":limit", value(limit)?)
            .value(":floor", value(limit.checked_neg().ok_or_else(|| AppError::Internal("limit".into()))?)?)
            .value(":yes", AttributeValue::Bool(true));
    }
    if sets.is_empty() {
        return Err(AppError::Internal("an account change that changes nothing".into()));
    }
    if let Some(account) = sharded {
        expr = expr.value(":shards", value(account.account.shards)?);
    }
    let update = Action::update(
        table,
        PaymentLabel::Account,
        account_key(tenant, account_id),
        &format!("SET {}", sets.join(", ")),
        Some(&conditions.join(" AND ")),
        expr,
    )?;
    Ok(std::iter::once(update).chain(shard_actions).collect())
}

/// A credit shard's part of a status change: the new status; closing needs
/// it empty (no posted or pending credit).
fn shard_status(
    table: &str,
    tenant: &str,
    account_id: &str,
    shard: u32,
    change: &AccountChange,
) -> Result<Action<PaymentLabel>, AppError> {
    let status = change.status.unwrap_or_default();
    let mut condition = "attribute_exists(pk)".to_owned();
    let mut expr = Expr::default().name("#status", "status").value(":new_status", value(status)?);
    if status == AccountStatus::Closed {
        condition.push_str(" AND available = :zero AND credits_pending = :zero AND credits_posted = :zero");
        expr = expr.value(":zero", value(0)?);
    }
    Action::update(
        table,
        PaymentLabel::Shard,
        shard_key(tenant, account_id, shard),
        "SET #status = :new_status",
        Some(&condition),
        expr,
    )
}

/// Why [`change_account`]'s condition failed, from the account as it was
/// (`None`: there was no account); `with_shards`: the change named its shards.
pub fn refusal(
    old: Option<&Item>,
    change: &AccountChange,
    with_shards: bool,
) -> Result<ChangeRefused, AppError> {
    let Some(old) = old else { return Ok(ChangeRefused::Missing) };
    let account = decode_account(old.clone())?;
    if account.shards > 1 && !with_shards {
        return Ok(ChangeRefused::Sharded);
    }
    let closing = change.status == Some(AccountStatus::Closed);
    let b = &account.balances;
    if account.status == AccountStatus::Closed && (!closing || change.overdraft_limit.is_some()) {
        return Ok(ChangeRefused::Closed);
    }
    if closing && (b.available != 0 || b.debits_pending != 0 || b.credits_pending != 0) {
        return Ok(ChangeRefused::NotSettled);
    }
    match change.overdraft_limit {
        Some(_) if !account.allow_overdraft => Ok(ChangeRefused::NoOverdraft),
        Some(_) => Ok(ChangeRefused::BelowOverdraft(b.available.saturating_neg())),
        None => Err(AppError::Internal("account change refused for no known reason".into())),
    }
}

pub fn insert_entry(table: &str, entry: &EntryRecord) -> Result<Action<PaymentLabel>, AppError> {
    Keyed::new(
        account_pk(&entry.tenant_id, &entry.account_id),
        format!("{ENTRY_PREFIX}{}", entry.tx_id),
        ENTRY_KIND,
        entry,
    )
    .insert(table, PaymentLabel::Entry)
}

pub fn insert_transaction(
    table: &str,
    transaction: &LedgerTransactionRecord,
) -> Result<Action<PaymentLabel>, AppError> {
    let pk = tenant_pk(&transaction.tenant_id, &format!("LTX#{}", transaction.tx_id));
    Keyed::new(pk, "LTX", "ledger_transaction", transaction)
        .indexed(tenant_pk(&transaction.tenant_id, "LTX"), &transaction.tx_id)
        .insert(table, PaymentLabel::LedgerTransaction)
}

/// One page of an account's entries, newest first, after the entry of
/// transaction `after` (the cursor: the last entry's tx id of a previous
/// page; clients hand it back, so callers check it is an id). An explicit
/// cursor, not a paginator: the page boundary is the API's own pagination.
pub async fn list_entries(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
    limit: i32,
    after: Option<&str>,
) -> Result<(Vec<EntryRecord>, Option<String>), AppError> {
    let pk = account_pk(tenant, account_id);
    let start = after.map(|tx_id| key(pk.clone(), &format!("{ENTRY_PREFIX}{tx_id}")));
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :entry)")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .expression_attribute_values(":entry", AttributeValue::S(ENTRY_PREFIX.into()))
        .scan_index_forward(false)
        .consistent_read(true)
        .limit(limit)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list entries", e))?;
    entry_page(output)
}

/// A page of entries and its cursor: the last entry's tx id, if there are more.
fn entry_page(
    output: aws_sdk_dynamodb::operation::query::QueryOutput,
) -> Result<(Vec<EntryRecord>, Option<String>), AppError> {
    let next = output
        .last_evaluated_key()
        .and_then(|k| k.get("sk"))
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| sk.strip_prefix(ENTRY_PREFIX))
        .map(str::to_owned);
    let entries = output.items.unwrap_or_default().into_iter().map(decode_entry).collect::<Result<_, _>>()?;
    Ok((entries, next))
}

/// An account's totals at the end of one UTC day: every entry of a ledger
/// transaction made before the next midnight (transaction ids carry their
/// time, see [`crate::ids::new_id_at`]). Written once by the verify job for
/// each day that had entries and has ended; immutable, derived from the
/// entries (verify checks it against them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub tenant_id: String,
    pub account_id: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    #[serde(flatten)]
    pub balances: Balances,
    /// The entries up to then.
    pub entries: u64,
}

/// Writes a snapshot unless that day's is there already (a no-op then).
pub async fn insert_snapshot(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    snapshot: &SnapshotRecord,
) -> Result<(), AppError> {
    let pk = account_pk(&snapshot.tenant_id, &snapshot.account_id);
    let item =
        Keyed::new(pk, format!("{SNAPSHOT_PREFIX}{}", snapshot.day), SNAPSHOT_KIND, snapshot).item()?;
    super::put_if_absent(dynamodb, table, item, "write balance snapshot").await.map(|_| ())
}

/// The latest snapshot of a day up to `day` (`YYYY-MM-DD`), one consistent
/// query of at most one item.
pub async fn latest_snapshot(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    (tenant, account_id): (&str, &str),
    day: &str,
) -> Result<Option<SnapshotRecord>, AppError> {
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :day")
        .expression_attribute_values(":pk", AttributeValue::S(account_pk(tenant, account_id)))
        .expression_attribute_values(":first", AttributeValue::S(SNAPSHOT_PREFIX.to_owned()))
        .expression_attribute_values(":day", AttributeValue::S(format!("{SNAPSHOT_PREFIX}{day}")))
        .scan_index_forward(false)
        .consistent_read(true)
        .limit(1)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("read balance snapshot", e))?;
    output.items.unwrap_or_default().into_iter().next().map(from_item).transpose()
}

/// One page of an account's entries of the transactions made in
/// `[from, to)`, oldest first, after the entry of transaction `after` (the
/// bounds are [`crate::ids::time_floor`]s: the key range is the time range).
pub async fn entries_between(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    (tenant, account_id): (&str, &str),
    (from, to): (&str, &str),
    (limit, after): (Option<i32>, Option<&str>),
) -> Result<(Vec<EntryRecord>, Option<String>), AppError> {
    let pk = account_pk(tenant, account_id);
    let start = after.map(|tx_id| key(pk.clone(), &format!("{ENTRY_PREFIX}{tx_id}")));
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .expression_attribute_values(":from", AttributeValue::S(format!("{ENTRY_PREFIX}{from}")))
        .expression_attribute_values(":to", AttributeValue::S(format!("{ENTRY_PREFIX}{to}")))
        .consistent_read(true)
        .set_limit(limit)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list entries", e))?;
    entry_page(output)
}

/// An account as the verify job reads it.
#[derive(Debug, Clone)]
pub enum StoredAccount {
    Valid(AccountRecord),
    /// A total beyond i64: reported, not decoded.
    OutOfRange(OutOfRange),
}

/// An account's whole partition as the verify job reads it.
#[derive(Debug, Clone, Default)]
pub struct AccountHistory {
    pub account: Option<StoredAccount>,
    /// A hot account's credit shards (shard order).
    pub shards: Vec<ShardRecord>,
    pub entries: Vec<EntryRecord>,
    pub snapshots: Vec<SnapshotRecord>,
}

/// An account item, its shards, all its entries and its snapshots, read
/// together (strongly consistent). A shard with a total beyond i64 reports
/// the account as [`StoredAccount::OutOfRange`].
pub async fn account_with_entries(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
) -> Result<AccountHistory, AppError> {
    let mut history = AccountHistory::default();
    let mut shard_out_of_range = None;
    let items = super::query_all(dynamodb, table, account_pk(tenant, account_id), true).await?;
    for item in items {
        match item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) {
            Some(ACCOUNT_KIND) => {
                history.account = Some(match OutOfRange::of(&item) {
                    Some(out_of_range) => StoredAccount::OutOfRange(out_of_range),
                    None => StoredAccount::Valid(decode_account(item)?),
                })
            }
            Some(SHARD_KIND) => match OutOfRange::of(&item) {
                Some(out_of_range) => shard_out_of_range = Some(out_of_range),
                None => history.shards.push(from_item(item)?),
            },
            Some(ENTRY_KIND) => history.entries.push(decode_entry(item)?),
            Some(SNAPSHOT_KIND) => history.snapshots.push(from_item(item)?),
            _ => {}
        }
    }
    if let (Some(out_of_range), Some(StoredAccount::Valid(_))) = (shard_out_of_range, &history.account) {
        history.account = Some(StoredAccount::OutOfRange(out_of_range));
    }
    Ok(history)
}

/// Every tenant that has ledger accounts (a full scan: for the verify job).
pub async fn tenants_with_accounts(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<String>, AppError> {
    super::tenants_with(dynamodb, table, ACCOUNT_KIND).await
}

/// Every account id of a tenant (from the accounts index, every page).
pub async fn tenant_account_ids(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Vec<String>, AppError> {
    let items = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(accounts_index_pk(tenant)))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("list accounts", e))?;
    Ok(items.iter().filter_map(|i| i.get("account_id")?.as_s().ok().cloned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Movement;

    fn account(credits_posted: &str) -> Item {
        let n = |v: &str| AttributeValue::N(v.to_owned());
        Item::from([
            ("account_id".to_owned(), AttributeValue::S("a1".into())),
            ("debits_pending".to_owned(), n("0")),
            ("credits_pending".to_owned(), n("0")),
            ("debits_posted".to_owned(), n("0")),
            ("credits_posted".to_owned(), n(credits_posted)),
            ("available".to_owned(), n(credits_posted)),
        ])
    }

    #[test]
    fn every_total_an_update_changes_is_bounded() {
        let (payer, _) = Movement::Capture { authorized: 700, captured: 500 }.deltas();
        let change = BalanceUpdate {
            label: PaymentLabel::Payer,
            tenant: "acme",
            account_id: "a1",
            currency: "USD",
            delta: payer,
            owner: None,
            shard: 0,
        };
        let action = apply_delta("t", &change).unwrap();
        let update = action.write.update().expect("an update");
        let condition = update.condition_expression().unwrap();
        assert!(condition.contains("debits_pending >= :bound_debits_pending"), "{condition}");
        assert!(condition.contains("debits_posted <= :bound_debits_posted"), "{condition}");
        assert!(condition.contains("available <= :bound_available"), "{condition}");
        let values = update.expression_attribute_values().unwrap();
        assert_eq!(values[":bound_debits_posted"], AttributeValue::N((i64::MAX - 500).to_string()));
        assert_eq!(values[":bound_debits_pending"], AttributeValue::N((i64::MIN + 700).to_string()));
    }

    #[test]
    fn a_refused_update_is_told_apart_from_an_overdraft() {
        let (_, payee) = Movement::Capture { authorized: 10, captured: 10 }.deltas();
        assert!(exceeds_range(&account(&(i64::MAX - 9).to_string()), &payee));
        assert!(!exceeds_range(&account(&(i64::MAX - 10).to_string()), &payee));
        let (payer, _) = Movement::Authorize { amount: 10 }.deltas();
        assert!(!exceeds_range(&account("5"), &payer), "an overdraft, not the range");
    }

    #[test]
    fn a_stored_total_beyond_i64_is_a_conflict_not_an_internal_error() {
        let incomplete = decode_account(account("100")).unwrap_err();
        assert!(matches!(incomplete, AppError::Internal(_)), "in range, only incomplete: {incomplete:?}");
        let error = decode_account(account("9223372036854775808")).unwrap_err();
        assert!(matches!(error, AppError::Conflict(_)), "{error:?}");
        assert_eq!(OutOfRange::of(&account("9223372036854775807")), None);
        let out = OutOfRange::of(&account("-9223372036854775809")).unwrap();
        assert_eq!((out.attribute.as_str(), out.value.as_str()), ("credits_posted", "-9223372036854775809"));
    }
}
