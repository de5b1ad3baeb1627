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

use super::account_layouts::{self, LEGACY_OVERDRAFT_LIMIT};
use super::labels::PaymentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use crate::ledger::{Balances, Delta};
use crate::payments::ownership::Owner;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

/// The `kind` of account items.
const ACCOUNT_KIND: &str = account_layouts::KIND;
const ENTRY_KIND: &str = "ledger_entry";
/// Entries' sort keys: the prefix, then the ledger transaction id.
const ENTRY_PREFIX: &str = "ENTRY#";

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
    pub created_at: String,
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
    key(account_pk(tenant, account_id), "ACCOUNT")
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
    Keyed::new(account_pk(&account.tenant_id, &account.account_id), "ACCOUNT", ACCOUNT_KIND, &account)
        .indexed(accounts_index_pk(&account.tenant_id), &account.account_id)
        .version(account_layouts::SCHEMA_VERSION)
        .insert(table, PaymentLabel::Account)
}

pub fn decode_account(item: Item) -> Result<AccountRecord, AppError> {
    from_item(item)
}

pub fn decode_entry(item: Item) -> Result<EntryRecord, AppError> {
    from_item(item)
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
}

/// The overdraft rule when a debit of `:need` lowers the available balance:
/// the limit on accounts that have one; on legacy accounts the old rule with
/// the default limit (their `spendable` is meaningless until migrated).
const OVERDRAFT_RULE: &str = "((attribute_exists(overdraft_limit) AND spendable >= :need) \
     OR (attribute_not_exists(overdraft_limit) AND (available >= :need \
     OR (allow_overdraft = :yes AND available >= :legacy_need))))";

/// Applies a delta to an account's totals with ADD (no read-modify-write).
/// The condition checks the currency (and so existence), the owner when
/// given, and, when the delta lowers the available balance, the overdraft
/// rule, atomically.
pub fn apply_delta(table: &str, change: &BalanceUpdate<'_>) -> Result<Action<PaymentLabel>, AppError> {
    let delta = &change.delta;
    let mut terms = Vec::new();
    let mut expr = Expr::default().value(":currency", value(change.currency)?);
    for (attribute, amount) in [
        ("debits_pending", delta.debits_pending),
        ("credits_pending", delta.credits_pending),
        ("debits_posted", delta.debits_posted),
        ("credits_posted", delta.credits_posted),
        ("available", delta.available()),
    ] {
        if amount != 0 {
            terms.push(format!("{attribute} :{attribute}"));
            expr = expr.value(&format!(":{attribute}"), value(amount)?);
        }
    }
    if delta.available() != 0 {
        terms.push("spendable :available".to_owned());
    }
    let mut condition = String::from("currency = :currency");
    if let Some(owner) = change.owner {
        condition.push_str(" AND #owner = :owner");
        expr = expr.name("#owner", "owner").value(":owner", value(owner)?);
    }
    if delta.available() < 0 {
        let need = -delta.available();
        condition.push_str(" AND ");
        condition.push_str(OVERDRAFT_RULE);
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
    let key = account_key(change.tenant, change.account_id);
    Action::update(table, change.label, key, &update, Some(&condition), expr)
}

/// Gives an overdraft account a new limit, `spendable` following from the
/// balance at that moment (one atomic update); fails (label `account`) if
/// the account is missing or does not allow overdraft.
pub fn set_overdraft_limit(
    table: &str,
    tenant: &str,
    account_id: &str,
    limit: i64,
) -> Result<Action<PaymentLabel>, AppError> {
    Action::update(
        table,
        PaymentLabel::Account,
        account_key(tenant, account_id),
        "SET overdraft_limit = :limit, spendable = available + :limit",
        Some("allow_overdraft = :yes"),
        Expr::default().value(":limit", value(limit)?).value(":yes", AttributeValue::Bool(true)),
    )
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

/// Whether `sk` is an entry's sort key: what [`list_entries`] takes as the
/// cursor of the next page (clients hand it back, so it is checked).
pub fn is_entry_sort_key(sk: &str) -> bool {
    sk.strip_prefix(ENTRY_PREFIX).is_some_and(crate::ids::is_valid_id)
}

/// One page of an account's entries, newest first, after `cursor` (an entry
/// sort key from a previous page). An explicit cursor, not a paginator: the
/// page boundary is the API's own pagination cursor.
pub async fn list_entries(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
    limit: i32,
    cursor: Option<&str>,
) -> Result<(Vec<EntryRecord>, Option<String>), AppError> {
    let pk = account_pk(tenant, account_id);
    let start = cursor.map(|sk| key(pk.clone(), sk));
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
    let next = output.last_evaluated_key().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).cloned();
    let entries = output.items.unwrap_or_default().into_iter().map(decode_entry).collect::<Result<_, _>>()?;
    Ok((entries, next))
}

/// An account item and all its entries, read together (strongly consistent).
pub async fn account_with_entries(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
) -> Result<(Option<AccountRecord>, Vec<EntryRecord>), AppError> {
    let mut account = None;
    let mut entries = Vec::new();
    let items = super::query_all(dynamodb, table, account_pk(tenant, account_id), true).await?;
    for item in items {
        match item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) {
            Some(ACCOUNT_KIND) => account = Some(decode_account(item)?),
            Some(ENTRY_KIND) => entries.push(decode_entry(item)?),
            _ => {}
        }
    }
    Ok((account, entries))
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
