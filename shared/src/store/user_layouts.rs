//! The shipped layouts of user items and the reversible changes between
//! them. The `migrate` registry orders these changes by version; the user
//! store reads every layout ([`read_shape`]).
//!
//! Expand → backfill → contract of the creation time:
//! - [`CREATED_AT_MS`] (expand + backfill): adds `created_at_ms`, the
//!   creation time as epoch milliseconds (sortable, comparable in condition
//!   and filter expressions), derived from the RFC 3339 `created_at`.
//! - [`DROP_CREATED_AT`] (contract): removes the string `created_at`, which
//!   the expand made redundant. Refuses (fails the item) unless the string is
//!   exactly what `down` would rebuild, so the contract is lossless. Readers
//!   accept every shape: [`read_shape`] rebuilds `created_at` for the user
//!   store's decoder, so deploy → migrate → contract never breaks a live
//!   request, and rolling back is `down`.
//!
//! Legacy users:
//! - [`FLAG_LEGACY_BCRYPT`]: users whose `password_hash` is a legacy bcrypt
//!   hash get `needs_rehash = true`: login already replaces such hashes with
//!   Argon2id on the next success; the flag makes the remaining legacy
//!   accounts countable and addressable (reset campaigns) without parsing
//!   hashes in a scan.
//! - [`DIRECTORY`]: users that predate roles get what the access model reads
//!   besides the user item: their entry in the tenant's directory
//!   ([`super::members`]: role `member`, as the user item without `role`
//!   already reads, active, session epoch 0) and their tenant's record
//!   ([`super::tenants::backfilled`]: open to signup, as the tenant behaved).
//!   Both are created only if absent (users registered since have them); the
//!   user item itself is unchanged but for its version, and `down` leaves
//!   both in place (later releases read them; they grant nothing by themselves).

use super::Item;
use super::members::MemberRecord;
use super::migrations::{LayoutChange, TransformError, no_companions};
use crate::auth::password;
use crate::clock::{epoch_ms, parse_rfc3339, rfc3339_ms};
use aws_sdk_dynamodb::types::AttributeValue;

/// The `kind` of user items.
pub const KIND: &str = "user";

/// `created_at_ms` derived from `created_at` (both kept).
pub const CREATED_AT_MS: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["created_at"],
    up: add_created_at_ms,
    down: remove_created_at_ms,
    companions: no_companions,
};

/// `created_at` dropped (`created_at_ms` replaces it).
pub const DROP_CREATED_AT: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["created_at", "created_at_ms"],
    up: drop_created_at,
    down: restore_created_at,
    companions: no_companions,
};

/// `needs_rehash = true` on users with a legacy bcrypt hash.
pub const FLAG_LEGACY_BCRYPT: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["password_hash"],
    up: flag_bcrypt,
    down: unflag_bcrypt,
    companions: no_companions,
};

/// The directory entry and the tenant record of users that predate them.
pub const DIRECTORY: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["user_id", "email"],
    up: unchanged,
    down: unchanged,
    companions: directory_entry_and_tenant,
};

/// Brings a user item of any shipped layout into the shape the user store
/// decodes (lazy migrate-on-read): rebuilds `created_at` when the contract
/// removed it.
pub fn read_shape(item: &mut Item) {
    if item.contains_key("created_at") {
        return;
    }
    if let Some(text) = number(item, "created_at_ms").and_then(rfc3339_ms) {
        item.insert("created_at".to_owned(), AttributeValue::S(text));
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn parse_ms(text: &str) -> Option<i64> {
    parse_rfc3339(text).map(epoch_ms)
}

fn add_created_at_ms(item: &mut Item) -> Result<(), TransformError> {
    let text = string(item, "created_at").ok_or_else(|| TransformError::new("created_at is missing"))?;
    let ms = parse_ms(text).ok_or_else(|| TransformError::new("created_at is not RFC 3339"))?;
    match number(item, "created_at_ms") {
        Some(existing) if existing != ms => {
            Err(TransformError::new("created_at_ms disagrees with created_at"))
        }
        _ => {
            item.insert("created_at_ms".to_owned(), AttributeValue::N(ms.to_string()));
            Ok(())
        }
    }
}

fn remove_created_at_ms(item: &mut Item) -> Result<(), TransformError> {
    if string(item, "created_at").is_none() {
        return Err(TransformError::new("created_at is missing: the item is in the contracted (v3) shape"));
    }
    item.remove("created_at_ms");
    Ok(())
}

fn drop_created_at(item: &mut Item) -> Result<(), TransformError> {
    let ms = number(item, "created_at_ms").ok_or_else(|| TransformError::new("created_at_ms is missing"))?;
    let text = string(item, "created_at").ok_or_else(|| TransformError::new("created_at is missing"))?;
    if rfc3339_ms(ms).as_deref() != Some(text) {
        return Err(TransformError::new(
            "created_at is not the canonical text of created_at_ms; dropping it would lose data",
        ));
    }
    item.remove("created_at");
    Ok(())
}

fn restore_created_at(item: &mut Item) -> Result<(), TransformError> {
    let ms = number(item, "created_at_ms").ok_or_else(|| TransformError::new("created_at_ms is missing"))?;
    let text = rfc3339_ms(ms).ok_or_else(|| TransformError::new("created_at_ms is out of range"))?;
    item.insert("created_at".to_owned(), AttributeValue::S(text));
    Ok(())
}

fn flag_bcrypt(item: &mut Item) -> Result<(), TransformError> {
    let hash =
        string(item, "password_hash").ok_or_else(|| TransformError::new("password_hash is missing"))?;
    if password::is_bcrypt(hash) {
        item.insert("needs_rehash".to_owned(), AttributeValue::Bool(true));
    }
    Ok(())
}

fn unflag_bcrypt(item: &mut Item) -> Result<(), TransformError> {
    item.remove("needs_rehash");
    Ok(())
}

fn unchanged(_: &mut Item) -> Result<(), TransformError> {
    Ok(())
}

fn directory_entry_and_tenant(item: &Item) -> Result<Vec<Item>, TransformError> {
    let invalid = |e: crate::error::AppError| TransformError::new(e.to_string());
    let user = super::users::decode_item(item.clone()).map_err(invalid)?;
    let entry = MemberRecord {
        tenant_id: user.tenant_id.clone(),
        user_id: user.user_id,
        email: user.email,
        role: user.role,
        status: user.status,
        session_epoch: user.session_epoch,
        created_at: user.created_at.clone(),
        updated_at: None,
    };
    let tenant = super::tenants::backfilled(&user.tenant_id, &user.created_at).map_err(invalid)?;
    Ok(vec![super::members::item(&entry).map_err(invalid)?, tenant])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_parse_in_any_offset() {
        assert_eq!(parse_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_ms("2023-11-14T23:13:20+01:00"), Some(1_700_000_000_000));
    }
}
