//! User items. A user is keyed by its normalized email within the tenant, so
//! the key itself enforces "one account per email per tenant" and login finds
//! the credentials in one read; `gsi1` finds a user by id.

use super::devices::{self, DeviceChange, DeviceRecord};
use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, from_item, get, key, tenant_pk, value};
use crate::auth::principal::Role;
use crate::error::AppError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The layout new users are written in: v2, the expand shape of the
/// `created_at` → `created_at_ms` migration (both fields), which readers of
/// this release and of the one before understand. The contract (v3) is an
/// operator step, `migrate up`; readers accept every shipped shape.
pub const SCHEMA_VERSION: u32 = 2;

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
    pub email: String,
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
}

pub(super) fn user_key(tenant: &str, email: &str) -> Item {
    key(tenant_pk(tenant, &format!("USER#{email}")), "USER")
}

/// Inserts a new user; the condition makes a second user with the same email fail.
pub fn insert(table: &str, user: &UserRecord) -> Result<Action<AuthLabel>, AppError> {
    Keyed::new(tenant_pk(&user.tenant_id, &format!("USER#{}", user.email)), "USER", "user", user)
        .indexed(tenant_pk(&user.tenant_id, &format!("USERID#{}", user.user_id)), "USER")
        // The shape decides the version: users imported without `created_at_ms` are v1.
        .version(if user.created_at_ms.is_some() { SCHEMA_VERSION } else { 1 })
        .insert(table, LABEL)
}

pub async fn find_by_email(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    email: &str,
) -> Result<Option<UserRecord>, AppError> {
    match get(dynamodb, table, user_key(tenant, email)).await? {
        Some(item) => Ok(Some(decode_item(item)?)),
        None => Ok(None),
    }
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
    let stored: Stored = from_item(item)?;
    Ok(stored.record)
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
    Action::update(table, LABEL, user_key(&user.tenant_id, &user.email), &update, Some(&condition), expr)
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
        user_key(&user.tenant_id, &user.email),
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

/// Sets the user's role, status and session epoch (the same values as the
/// directory entry, in the same transaction).
pub fn set_access(
    table: &str,
    tenant: &str,
    email: &str,
    role: Role,
    status: UserStatus,
    session_epoch: u64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        LABEL,
        user_key(tenant, email),
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
    Action::update(table, LABEL, user_key(&user.tenant_id, &user.email), &update, Some(condition), expr)
}
