//! Ledger accounts, their per-account entries and ledger transactions.
//! Entries live in the account's partition (`ENTRY#<tx id>`, time-ordered),
//! so an account and its history are read with one strongly consistent query.

use super::labels::PaymentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use crate::ledger::{Balances, Delta};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

/// The `kind` of account items.
const ACCOUNT_KIND: &str = "account";
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
    #[serde(flatten)]
    pub balances: Balances,
    pub created_at: String,
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

pub fn insert_account(table: &str, account: &AccountRecord) -> Result<Action<PaymentLabel>, AppError> {
    Keyed::new(account_pk(&account.tenant_id, &account.account_id), "ACCOUNT", ACCOUNT_KIND, account)
        .indexed(accounts_index_pk(&account.tenant_id), &account.account_id)
        .insert(table, PaymentLabel::Account)
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

/// Applies a delta to an account's totals with ADD (no read-modify-write).
/// The condition checks the currency (and so existence), bounds every total
/// the update changes so it stays within i64 (`credits_posted <= :max - amount`),
/// and, when the delta lowers the available balance, the overdraft rule,
/// atomically. `label` names the account's side ([`PaymentLabel::Payer`] or
/// [`PaymentLabel::Payee`]).
pub fn apply_delta(
    table: &str,
    label: PaymentLabel,
    tenant: &str,
    account_id: &str,
    currency: &str,
    delta: &Delta,
) -> Result<Action<PaymentLabel>, AppError> {
    let overflow = || AppError::Internal(format!("ledger delta out of range: {delta:?}"));
    let available = delta.available().ok_or_else(overflow)?;
    let mut terms = Vec::new();
    let mut conditions = vec!["currency = :currency".to_owned()];
    let mut expr = Expr::default().value(":currency", value(currency)?);
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
    if available < 0 {
        conditions.push("(allow_overdraft = :yes OR available >= :need)".to_owned());
        expr = expr
            .value(":yes", AttributeValue::Bool(true))
            .value(":need", value(available.checked_neg().ok_or_else(overflow)?)?);
    }
    let update = if terms.is_empty() {
        "SET currency = :currency".to_owned()
    } else {
        format!("ADD {}", terms.join(", "))
    };
    Action::update(
        table,
        label,
        account_key(tenant, account_id),
        &update,
        Some(&conditions.join(" AND ")),
        expr,
    )
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

/// An account as the verify job reads it.
#[derive(Debug, Clone)]
pub enum StoredAccount {
    Valid(AccountRecord),
    /// A total beyond i64: reported, not decoded.
    OutOfRange(OutOfRange),
}

/// An account item and all its entries, read together (strongly consistent).
pub async fn account_with_entries(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    account_id: &str,
) -> Result<(Option<StoredAccount>, Vec<EntryRecord>), AppError> {
    let mut account = None;
    let mut entries = Vec::new();
    let items = super::query_all(dynamodb, table, account_pk(tenant, account_id), true).await?;
    for item in items {
        match item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) {
            Some(ACCOUNT_KIND) => {
                account = Some(match OutOfRange::of(&item) {
                    Some(out_of_range) => StoredAccount::OutOfRange(out_of_range),
                    None => StoredAccount::Valid(decode_account(item)?),
                })
            }
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
        let action = apply_delta("t", PaymentLabel::Payer, "acme", "a1", "USD", &payer).unwrap();
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
