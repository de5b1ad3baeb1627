//! The shipped layouts of ledger account items and the change between them.
//!
//! - v1 (every account stored before owners and limits existed): no `owner`,
//!   no `overdraft_limit`, no `spendable`. Readers take it as tenant-owned,
//!   with [`LEGACY_OVERDRAFT_LIMIT`] when `allow_overdraft` is set, else 0;
//!   the balance update keeps the old overdraft rule for it, bounded by that
//!   same default ([`super::ledger`]).
//! - [`SCHEMA_VERSION`] (what new accounts are written as): `owner`,
//!   `overdraft_limit` and `spendable = available + overdraft_limit`.
//!
//! [`OWNER_AND_LIMIT`] moves a v1 account to the current layout exactly as
//! readers already take it: `owner = tenant`, the limit above, `spendable`
//! from the balance (recomputed: the live balance update moves `spendable`
//! on every account, meaningless on a v1 one). Its companion is the tenant
//! record, for tenants whose items predate tenant records. `down` refuses
//! (fails the item) an account whose owner or limit v1 cannot express, so a
//! rollback never loses an owner silently.

use super::Item;
use super::migrations::{LayoutChange, TransformError, no_sides};
use crate::payments::ownership::Owner;
use aws_sdk_dynamodb::types::AttributeValue;

/// The `kind` of account items.
pub const KIND: &str = "account";
/// The layout new accounts are written in (the version of [`OWNER_AND_LIMIT`]).
pub const SCHEMA_VERSION: u32 = 6;
/// The documented limit, in minor units of the account's currency, that
/// overdraft accounts stored before limits existed get (100,000.00 in a
/// two-decimal currency). The operator changes an account's limit with the
/// `tenants` job's `set_overdraft_limit` (docs/RUNBOOK.md).
pub const LEGACY_OVERDRAFT_LIMIT: i64 = 10_000_000;

/// `owner`, `overdraft_limit` and `spendable` on legacy accounts (and their tenant record).
pub const OWNER_AND_LIMIT: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["owner", "allow_overdraft", "overdraft_limit", "available", "spendable"],
    up: add_owner_and_limit,
    down: remove_owner_and_limit,
    companions: tenant_of_item,
    sides: no_sides,
};

fn number(item: &Item, name: &str) -> Result<Option<i64>, TransformError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => {
            text.parse().map(Some).map_err(|_| TransformError::new(format!("{name} is not an integer")))
        }
        Some(_) => Err(TransformError::new(format!("{name} is not a number"))),
    }
}

fn allows_overdraft(item: &Item) -> bool {
    matches!(item.get("allow_overdraft"), Some(AttributeValue::Bool(true)))
}

/// The limit a v1 account is given.
fn legacy_limit(item: &Item) -> i64 {
    if allows_overdraft(item) { LEGACY_OVERDRAFT_LIMIT } else { 0 }
}

fn spendable(item: &Item, limit: i64) -> Result<i64, TransformError> {
    let available = number(item, "available")?.unwrap_or(0);
    available.checked_add(limit).ok_or_else(|| TransformError::new("available + overdraft_limit overflows"))
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn add_owner_and_limit(item: &mut Item) -> Result<(), TransformError> {
    if !item.contains_key("owner") {
        item.insert("owner".to_owned(), AttributeValue::S(Owner::Tenant.text()));
    }
    let limit = match number(item, "overdraft_limit")? {
        Some(limit) => limit,
        None => legacy_limit(item),
    };
    let spendable = spendable(item, limit)?;
    item.insert("overdraft_limit".to_owned(), n(limit));
    item.insert("spendable".to_owned(), n(spendable));
    Ok(())
}

fn remove_owner_and_limit(item: &mut Item) -> Result<(), TransformError> {
    let tenant = AttributeValue::S(Owner::Tenant.text());
    if item.get("owner").is_some_and(|owner| *owner != tenant) {
        return Err(TransformError::new("the account has an owner; the v1 layout would lose it"));
    }
    let limit = number(item, "overdraft_limit")?.unwrap_or_else(|| legacy_limit(item));
    if limit != legacy_limit(item) {
        return Err(TransformError::new(
            "the account's overdraft limit is not the default; v1 would lose it",
        ));
    }
    for name in ["owner", "overdraft_limit", "spendable"] {
        item.remove(name);
    }
    Ok(())
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, TransformError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(TransformError::new(format!("{name} is missing"))),
    }
}

fn tenant_of_item(item: &Item) -> Result<Vec<Item>, TransformError> {
    let tenant = super::tenants::backfilled(text(item, "tenant_id")?, text(item, "created_at")?)
        .map_err(|e| TransformError::new(e.to_string()))?;
    Ok(vec![tenant])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(overdraft: bool, available: i64) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        Item::from([
            ("pk".into(), s("T#acme#ACCOUNT#a")),
            ("sk".into(), s("ACCOUNT")),
            ("kind".into(), s("account")),
            ("tenant_id".into(), s("acme")),
            ("created_at".into(), s("2026-01-02T03:04:05Z")),
            ("allow_overdraft".into(), AttributeValue::Bool(overdraft)),
            ("available".into(), n(available)),
        ])
    }

    #[test]
    fn legacy_accounts_become_tenant_owned_with_the_default_limit() {
        let mut funding = account(true, -250);
        add_owner_and_limit(&mut funding).unwrap();
        assert_eq!(funding.get("owner"), Some(&AttributeValue::S("tenant".into())));
        assert_eq!(funding.get("overdraft_limit"), Some(&n(LEGACY_OVERDRAFT_LIMIT)));
        assert_eq!(funding.get("spendable"), Some(&n(LEGACY_OVERDRAFT_LIMIT - 250)));
        remove_owner_and_limit(&mut funding).unwrap();
        assert_eq!(funding, account(true, -250));

        let mut wallet = account(false, 70);
        // The live update moved a meaningless `spendable` on the v1 item: recomputed.
        wallet.insert("spendable".into(), n(5));
        add_owner_and_limit(&mut wallet).unwrap();
        assert_eq!(wallet.get("spendable"), Some(&n(70)));
    }

    #[test]
    fn down_refuses_what_v1_cannot_express() {
        let mut owned = account(false, 0);
        add_owner_and_limit(&mut owned).unwrap();
        owned.insert("owner".into(), AttributeValue::S("user:u-1".into()));
        assert!(remove_owner_and_limit(&mut owned).is_err());
        let mut raised = account(true, 0);
        add_owner_and_limit(&mut raised).unwrap();
        raised.insert("overdraft_limit".into(), n(5));
        assert!(remove_owner_and_limit(&mut raised).is_err());
    }
}
