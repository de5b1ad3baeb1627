//! User items. A user is keyed by the lookup hash of its normalized email
//! within the tenant ([`crate::privacy::lookup`]), so the key itself enforces
//! "one account per email per tenant" and login finds the credentials in one
//! read without the email being stored; `gsi1` finds a user by id. The email
//! itself is sealed with the user's key (`email_sealed`,
//! [`crate::privacy::personal`]).
//!
//! Users stored before that are keyed by the plaintext email, which they
//! carry in `email`; the `users-seal-email` migration seals it beside the
//! plaintext and `users-drop-plaintext-email` moves the item to its lookup
//! key without the plaintext ([`super::user_layouts`]). Readers accept
//! both: login reads both keys in one round trip ([`find_for_login`]); a
//! record remembers the key it was read from, and every write goes there.

use super::devices::{self, DeviceChange, DeviceRecord};
use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, from_item, get, key, tenant_pk, value};
use crate::auth::principal::Role;
use crate::error::AppError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The layout new users are written in: sealed email, lookup key (the
/// shape of `users-drop-plaintext-email`; they keep the `created_at` string
/// beside `created_at_ms`, which readers of every layout accept).
pub const SCHEMA_VERSION: u32 = super::user_layouts::SEALED_VERSION;

/// The label of every write of a user item.
const LABEL: AuthLabel = AuthLabel::User;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    /// Cannot log in or refresh; set by an owner or admin.
    Disabled,
}

/// Users stored before roles existed read as members (least privilege).
fn legacy_role() -> Role {
    Role::Member
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub tenant_id: String,
    pub user_id: String,
    /// The plaintext email: only on items the migration has not contracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The email's lookup hash: the key of every user once migrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_lookup: Option<String>,
    /// The email sealed with the user's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_sealed: Option<String>,
    /// PHC string (Argon2id) or a legacy bcrypt hash.
    pub password_hash: String,
    pub created_at: String,
    /// `created_at` as epoch milliseconds (schema v2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_window_started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    /// The access state, kept equal to the user's directory entry
    /// ([`super::members`]) by every write that changes it.
    #[serde(default = "legacy_role")]
    pub role: Role,
    #[serde(default)]
    pub status: UserStatus,
    /// Bumped by every role or status change: refresh-token families issued
    /// under an older epoch no longer refresh.
    #[serde(default)]
    pub session_epoch: u64,
    /// The devices that have signed in, by token hash ([`super::devices`]);
    /// `None` for users stored before devices existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<BTreeMap<String, DeviceRecord>>,
    /// The second factor ([`super::mfa`]), if the user enrolled one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<super::mfa::MfaRecord>,
    /// The key component the item was read from (or is written under): its
    /// email lookup hash, or the plaintext email of a legacy item.
    #[serde(skip)]
    pub key_name: String,
}

impl UserRecord {
    /// The user item's key.
    pub(super) fn key(&self) -> Item {
        user_key(&self.tenant_id, &self.key_name)
    }
}

pub(super) fn user_key(tenant: &str, name: &str) -> Item {
    key(user_pk(tenant, name), "USER")
}

fn user_pk(tenant: &str, name: &str) -> String {
    tenant_pk(tenant, &format!("USER#{name}"))
}

/// Inserts a new user under its lookup key, unless a user with the same
/// email exists under either key (the legacy one is a condition check):
/// both fail with the label `user`.
pub fn insert(
    table: &str,
    user: &UserRecord,
    legacy_email: &str,
) -> Result<[Action<AuthLabel>; 2], AppError> {
    let put = Keyed::new(user_pk(&user.tenant_id, &user.key_name), "USER", "user", user)
        .indexed(tenant_pk(&user.tenant_id, &format!("USERID#{}", user.user_id)), "USER")
        .version(SCHEMA_VERSION)
        .insert(table, LABEL)?;
    let legacy = Action::condition_check(
        table,
        LABEL,
        user_key(&user.tenant_id, legacy_email),
        "attribute_not_exists(pk)",
        Expr::default(),
    )?;
    Ok([put, legacy])
}

/// Inserts a user in the layout of users stored before personal data was
/// sealed (keyed by the plaintext `email`, v1 or v2 by shape): what the
/// migrations start from, e.g. users imported from an older system.
pub fn insert_legacy(table: &str, user: &UserRecord) -> Result<Action<AuthLabel>, AppError> {
    let email =
        user.email.as_deref().ok_or_else(|| AppError::Internal("a legacy user needs its email".into()))?;
    Keyed::new(user_pk(&user.tenant_id, email), "USER", "user", user)
        .indexed(tenant_pk(&user.tenant_id, &format!("USERID#{}", user.user_id)), "USER")
        .version(if user.created_at_ms.is_some() { 2 } else { 1 })
        .insert(table, LABEL)
}

/// The user of a login: one strongly consistent read of both keys (the
/// lookup hash, and the email of a user the migration has not moved yet).
pub async fn find_for_login(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    lookup: &str,
    email: &str,
) -> Result<Option<UserRecord>, AppError> {
    let found =
        super::get_many(dynamodb, table, vec![user_key(tenant, lookup), user_key(tenant, email)]).await?;
    found.into_iter().flatten().next().map(decode_item).transpose()
}

/// The user item of a directory entry (where the entry says it is), if it
/// is still that user's.
pub async fn find_for_member(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    member: &super::members::MemberRecord,
) -> Result<Option<UserRecord>, AppError> {
    let Some(name) = member.user_key_name() else { return Ok(None) };
    Ok(find_by_key_name(dynamodb, table, &member.tenant_id, name)
        .await?
        .filter(|u| u.user_id == member.user_id))
}

/// The user item under `name` (a lookup hash or a legacy email).
pub async fn find_by_key_name(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    name: &str,
) -> Result<Option<UserRecord>, AppError> {
    get(dynamodb, table, user_key(tenant, name)).await?.map(decode_item).transpose()
}

/// Decodes a user item, e.g. the old image a cancelled transaction returned.
pub fn decode_item(mut item: Item) -> Result<UserRecord, AppError> {
    // Read every schema version we have shipped; fields are added with defaults,
    // and a contracted item (no created_at, see super::user_layouts) is
    // brought to the shape decoded here.
    super::user_layouts::read_shape(&mut item);
    #[derive(Deserialize)]
    struct Stored {
        #[serde(flatten)]
        record: UserRecord,
    }
    let pk = match item.get("pk") {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) => pk.clone(),
        _ => return Err(AppError::Internal("a user item without pk".into())),
    };
    let stored: Stored = from_item(item)?;
    let mut record = stored.record;
    record.key_name = pk
        .strip_prefix(&user_pk(&record.tenant_id, ""))
        .ok_or_else(|| AppError::Internal("a user item's pk is not a user key".into()))?
        .to_owned();
    Ok(record)
}

/// Records a successful login: resets the untrusted-client failure counters,
/// registers the device of the login (a new device token) and, when given,
/// replaces the password hash (only if it is still the one we verified, so a
/// concurrent password change is never overwritten). A sign-in with a
/// second factor spends it in the same update (`factor`).
pub fn record_login(
    table: &str,
    user: &UserRecord,
    at: &str,
    new_hash: Option<&str>,
    device: &DeviceChange,
    factor: Option<&super::mfa::FactorUse>,
) -> Result<Action<AuthLabel>, AppError> {
    let mut sets = vec!["last_login_at = :at".to_owned(), "failed_logins = :zero".to_owned()];
    let mut removes = vec!["failed_window_started_at".to_owned(), "locked_until".to_owned()];
    let mut expr = Expr::default().value(":at", value(at)?).value(":zero", value(0u32)?);
    // The session is issued with the role and epoch we read: a role or status
    // change committed since then fails this login instead of being missed.
    let (access, access_expr) = access_unchanged(user)?;
    let devices = devices::login_clauses(user, device)?;
    for extra in [access_expr, devices.expr] {
        expr.names.extend(extra.names);
        expr.values.extend(extra.values);
    }
    sets.extend(devices.sets);
    removes.extend(devices.removes);
    let mut factor_condition = None;
    if let Some(factor) = factor {
        let clauses = super::mfa::factor_clauses(factor)?;
        expr.names.extend(clauses.expr.names);
        expr.values.extend(clauses.expr.values);
        sets.extend(clauses.set);
        removes.extend(clauses.remove);
        factor_condition = Some(clauses.condition);
    }
    let condition = match new_hash {
        Some(hash) => {
            // The legacy-hash flag (migration v4) goes with the legacy hash.
            sets.push("password_hash = :new_hash".into());
            removes.push("needs_rehash".into());
            expr = expr.value(":new_hash", value(hash)?).value(":old_hash", value(&user.password_hash)?);
            format!("password_hash = :old_hash AND {access}")
        }
        None => format!("attribute_exists(pk) AND {access}"),
    };
    let mut condition = format!("{condition} AND {}", devices.condition);
    if let Some(factor) = factor_condition {
        condition = format!("{condition} AND {factor}");
    }
    let update = format!("SET {} REMOVE {}", sets.join(", "), removes.join(", "));
    Action::update(table, LABEL, user.key(), &update, Some(&condition), expr)
}

/// Replaces the password hash and moves the user to `session_epoch`
/// (revoking the refresh-token families of the old one), if the hash and the
/// access are still as read.
pub fn set_password(
    table: &str,
    user: &UserRecord,
    new_hash: &str,
    session_epoch: u64,
) -> Result<Action<AuthLabel>, AppError> {
    let (access, access_expr) = access_unchanged(user)?;
    let mut expr = Expr::default()
        .value(":new_hash", value(new_hash)?)
        .value(":old_hash", value(&user.password_hash)?)
        .value(":new_epoch", value(session_epoch)?);
    expr.names.extend(access_expr.names);
    expr.values.extend(access_expr.values);
    Action::update(
        table,
        LABEL,
        user.key(),
        "SET password_hash = :new_hash, session_epoch = :new_epoch REMOVE needs_rehash",
        Some(&format!("password_hash = :old_hash AND {access}")),
        expr,
    )
}

/// "The user is active and its access is as we read it": every role or
/// status change bumps the epoch, so comparing it covers both. Items stored
/// before these attributes existed match with their defaults.
fn access_unchanged(user: &UserRecord) -> Result<(String, Expr), AppError> {
    let expr = Expr::default()
        .name("#status", "status")
        .value(":active", value(UserStatus::Active)?)
        .value(":epoch", value(user.session_epoch)?);
    let epoch = if user.session_epoch == 0 {
        "(attribute_not_exists(session_epoch) OR session_epoch = :epoch)"
    } else {
        "session_epoch = :epoch"
    };
    Ok((format!("(attribute_not_exists(#status) OR #status = :active) AND {epoch}"), expr))
}

/// Deletes the user item of an erasure (label `user`), if it is still the
/// user as read: the same id and password hash (a re-authenticated erasure
/// checked the password against it) and, with `not_owner`, not an owner.
pub fn erase(table: &str, user: &UserRecord, not_owner: bool) -> Result<Action<AuthLabel>, AppError> {
    let mut expr =
        Expr::default().value(":uid", value(&user.user_id)?).value(":hash", value(&user.password_hash)?);
    let mut condition = "user_id = :uid AND password_hash = :hash".to_owned();
    if not_owner {
        expr = expr.name("#role", "role").value(":owner", value(Role::Owner)?);
        condition.push_str(" AND #role <> :owner");
    }
    Action::delete(table, LABEL, user.key(), Some(&condition), expr)
}

/// Sets the user's role, status and session epoch (the same values as the
/// directory entry, in the same transaction).
pub fn set_access(
    table: &str,
    tenant: &str,
    key_name: &str,
    role: Role,
    status: UserStatus,
    session_epoch: u64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        LABEL,
        user_key(tenant, key_name),
        "SET #role = :role, #status = :status, session_epoch = :epoch",
        Some("attribute_exists(pk)"),
        Expr::default()
            .name("#role", "role")
            .name("#status", "status")
            .value(":role", value(role)?)
            .value(":status", value(status)?)
            .value(":epoch", value(session_epoch)?),
    )
}

/// Records a failed login with the counters the lockout policy computed,
/// conditional on the counters we read, so concurrent failures are all counted.
pub fn record_failure(
    table: &str,
    user: &UserRecord,
    failed_logins: u32,
    window_started_at: Option<i64>,
    locked_until: Option<i64>,
) -> Result<Action<AuthLabel>, AppError> {
    let mut sets = vec!["failed_logins = :count"];
    let mut removes = Vec::new();
    let mut expr = Expr::default()
        .value(":count", value(failed_logins)?)
        .value(":old_count", value(user.failed_logins)?);
    match window_started_at {
        Some(at) => {
            sets.push("failed_window_started_at = :window");
            expr = expr.value(":window", value(at)?);
        }
        None => removes.push("failed_window_started_at"),
    }
    match locked_until {
        Some(until) => {
            sets.push("locked_until = :until");
            expr = expr.value(":until", value(until)?);
        }
        None => removes.push("locked_until"),
    }
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let condition = if user.failed_logins == 0 {
        "attribute_exists(pk) AND (attribute_not_exists(failed_logins) OR failed_logins = :old_count)"
    } else {
        "failed_logins = :old_count"
    };
    Action::update(table, LABEL, user.key(), &update, Some(condition), expr)
}
