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

//!
//! Personal data sealed (expand + backfill → contract):
//! - [`SEAL_EMAIL`] (v7, expand + backfill): user items and directory
//!   entries with a plaintext `email` get `email_lookup` (its keyed hash)
//!   and `email_sealed` (sealed with the user's key, which is created if the
//!   user has none) beside it: both written, so the previous release, which
//!   reads the plaintext, keeps working. The hash and the sealed value are
//!   computed before the pure transform (the migration's `prepare`: KMS);
//!   the transform checks they are there. `down` removes them.
//! - [`DROP_PLAINTEXT_EMAIL`] (v8, contract): the user item moves to its
//!   lookup key without the plaintext, and its directory entry loses the
//!   plaintext in the same transaction (so live code always finds the item
//!   where the entry says: the email while the entry has it, else the hash).
//!   `down` moves it back with the plaintext, opened from the sealed value
//!   (the prepare step, one KMS `Decrypt`); an erased user cannot go back.

use super::Item;
use super::members::MemberRecord;
use super::migrations::SideUpdate;
use super::migrations::{LayoutChange, TransformError, no_companions, no_sides};
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
    sides: no_sides,
};

/// `created_at` dropped (`created_at_ms` replaces it).
pub const DROP_CREATED_AT: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["created_at", "created_at_ms"],
    up: drop_created_at,
    down: restore_created_at,
    companions: no_companions,
    sides: no_sides,
};

/// `needs_rehash = true` on users with a legacy bcrypt hash.
pub const FLAG_LEGACY_BCRYPT: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["password_hash"],
    up: flag_bcrypt,
    down: unflag_bcrypt,
    companions: no_companions,
    sides: no_sides,
};

/// The directory entry and the tenant record of users that predate them.
pub const DIRECTORY: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["user_id", "email"],
    up: unchanged,
    down: unchanged,
    companions: directory_entry_and_tenant,
    sides: no_sides,
};

/// The version of [`SEAL_EMAIL`].
pub const SEAL_EMAIL_VERSION: u32 = 7;
/// The version of [`DROP_PLAINTEXT_EMAIL`].
pub const DROP_PLAINTEXT_EMAIL_VERSION: u32 = 8;
/// The layout version of users written sealed from the start.
pub const SEALED_VERSION: u32 = DROP_PLAINTEXT_EMAIL_VERSION;
/// The layout version of directory entries written sealed from the start
/// (their last migration is [`SEAL_EMAIL`]; the contract changes them with their user).
pub const SEALED_VERSION_MEMBERS: u32 = SEAL_EMAIL_VERSION;

/// `email_lookup` and `email_sealed` beside the plaintext `email`.
pub const SEAL_EMAIL: LayoutChange = LayoutChange {
    kinds: &[KIND, super::members::KIND],
    reads: &["email"],
    up: check_sealed,
    down: unseal,
    companions: no_companions,
    sides: no_sides,
};

/// The user item moved to its lookup key without the plaintext `email`.
pub const DROP_PLAINTEXT_EMAIL: LayoutChange = LayoutChange {
    kinds: &[KIND],
    reads: &["email", "email_lookup", "email_sealed"],
    up: drop_plaintext,
    down: restore_plaintext,
    companions: no_companions,
    sides: mirror_to_directory,
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

/// The email fields of a user item or directory entry, for the migration's
/// prepare step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailFields {
    pub tenant_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub sealed: Option<String>,
}

/// The item's email fields (`None`: not a user item or directory entry of a user).
pub fn email_fields(item: &Item) -> Option<EmailFields> {
    Some(EmailFields {
        tenant_id: string(item, "tenant_id")?.to_owned(),
        user_id: string(item, "user_id")?.to_owned(),
        email: string(item, "email").map(str::to_owned),
        sealed: string(item, "email_sealed").map(str::to_owned),
    })
}

/// The attributes [`SEAL_EMAIL`] expects prepared.
pub fn sealed_fields(lookup: String, sealed: String) -> Item {
    Item::from([
        ("email_lookup".to_owned(), AttributeValue::S(lookup)),
        ("email_sealed".to_owned(), AttributeValue::S(sealed)),
    ])
}

/// The attribute [`DROP_PLAINTEXT_EMAIL`]'s `down` expects prepared.
pub fn plaintext_field(email: String) -> Item {
    Item::from([("email".to_owned(), AttributeValue::S(email))])
}

fn check_sealed(item: &mut Item) -> Result<(), TransformError> {
    if string(item, "email_lookup").is_none() || string(item, "email_sealed").is_none() {
        return Err(TransformError::new("the email was not sealed (no key, or no email)"));
    }
    Ok(())
}

fn unseal(item: &mut Item) -> Result<(), TransformError> {
    if string(item, "email").is_none() {
        return Err(TransformError::new("no plaintext email to keep (the user may be erased)"));
    }
    item.remove("email_lookup");
    item.remove("email_sealed");
    Ok(())
}

fn user_pk(item: &Item, name: &str) -> Result<AttributeValue, TransformError> {
    let tenant = string(item, "tenant_id").ok_or_else(|| TransformError::new("tenant_id is missing"))?;
    Ok(AttributeValue::S(super::tenant_pk(tenant, &format!("USER#{name}"))))
}

fn drop_plaintext(item: &mut Item) -> Result<(), TransformError> {
    check_sealed(item)?;
    let lookup = string(item, "email_lookup").unwrap_or_default().to_owned();
    let pk = user_pk(item, &lookup)?;
    item.insert("pk".to_owned(), pk);
    item.remove("email");
    Ok(())
}

fn restore_plaintext(item: &mut Item) -> Result<(), TransformError> {
    let email = string(item, "email")
        .ok_or_else(|| TransformError::new("the sealed email could not be opened (the user may be erased)"))?
        .to_owned();
    let pk = user_pk(item, &email)?;
    item.insert("pk".to_owned(), pk);
    Ok(())
}

/// The directory entry gets the user item's email fields (and loses the
/// plaintext when the item has none).
fn mirror_to_directory(item: &Item) -> Result<Vec<SideUpdate>, TransformError> {
    let tenant = string(item, "tenant_id").ok_or_else(|| TransformError::new("tenant_id is missing"))?;
    let user_id = string(item, "user_id").ok_or_else(|| TransformError::new("user_id is missing"))?;
    let mut side =
        SideUpdate { key: super::members::member_key(tenant, user_id), set: Item::new(), remove: Vec::new() };
    for name in ["email", "email_lookup", "email_sealed"] {
        match item.get(name) {
            Some(value) => {
                side.set.insert(name.to_owned(), value.clone());
            }
            None => side.remove.push(name.to_owned()),
        }
    }
    Ok(vec![side])
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
        email_lookup: user.email_lookup,
        email_sealed: user.email_sealed,
        display_name_sealed: None,
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
