//! Sessions (refresh-token families) and refresh tokens. A refresh token is
//! stored only as its SHA-256 hash, in the key; rotation marks it spent.
//!
//! A family keeps the roles it was issued with and the user's session epoch
//! at the time; every token of the family carries both, so a refresh needs
//! no other read. That is sound because any role or status change bumps the
//! user's epoch, and a refresh requires the epoch to be unchanged.
//!
//! A session is listed in `gsi1` under its user (`T#<t>#USERSESSIONS#<user>`,
//! newest last), for `GET /v1/sessions`. It ends at its idle expiry
//! (`expires_at`, extended by each rotation) or at its absolute one
//! (`absolute_expires_at`, never extended), whichever comes first.

use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, TTL_ATTRIBUTE, from_item, get, key, tenant_pk, value};
use crate::auth::principal::Role;
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Spent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub tenant_id: String,
    pub family_id: String,
    pub user_id: String,
    pub status: TokenStatus,
    pub created_at: String,
    /// Epoch seconds; also the TTL attribute. Checked in code: TTL deletes late.
    pub expires_at: i64,
    /// The family's roles (absent in tokens issued before roles: none).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The user's session epoch the family was issued under.
    #[serde(default)]
    pub session_epoch: u64,
    /// When the family ends whatever its use (absent in tokens issued
    /// before absolute lifetimes: set by their next rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub tenant_id: String,
    pub family_id: String,
    pub user_id: String,
    pub created_at: String,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub session_epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_expires_at: Option<i64>,
    /// The last rotation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// The `User-Agent` of the sign-in, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

fn user_sessions(tenant: &str, user_id: &str) -> String {
    tenant_pk(tenant, &format!("USERSESSIONS#{user_id}"))
}

fn token_key(tenant: &str, token_hash: &str) -> Item {
    key(tenant_pk(tenant, &format!("RT#{token_hash}")), "RT")
}

fn session_key(tenant: &str, family_id: &str) -> Item {
    key(tenant_pk(tenant, &format!("SESSION#{family_id}")), "SESSION")
}

pub fn insert_session(table: &str, session: &SessionRecord) -> Result<Action<AuthLabel>, AppError> {
    let pk = tenant_pk(&session.tenant_id, &format!("SESSION#{}", session.family_id));
    Keyed::new(pk, "SESSION", "session", session)
        .indexed(user_sessions(&session.tenant_id, &session.user_id), &session.family_id)
        .version(SCHEMA_VERSION)
        .insert(table, AuthLabel::Session)
}

pub fn insert_token(
    table: &str,
    token_hash: &str,
    token: &RefreshTokenRecord,
) -> Result<Action<AuthLabel>, AppError> {
    let pk = tenant_pk(&token.tenant_id, &format!("RT#{token_hash}"));
    Keyed::new(pk, "RT", "refresh_token", token).version(SCHEMA_VERSION).insert(table, AuthLabel::NewToken)
}

pub async fn find_token(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    token_hash: &str,
) -> Result<Option<RefreshTokenRecord>, AppError> {
    #[derive(Deserialize)]
    struct Stored {
        #[serde(flatten)]
        record: RefreshTokenRecord,
    }
    match get(dynamodb, table, token_key(tenant, token_hash)).await? {
        Some(item) => Ok(Some(from_item::<Stored>(item)?.record)),
        None => Ok(None),
    }
}

/// Spends an active token; fails (label [`AuthLabel::Token`]) if it was already spent,
/// which is how a concurrent second use of the same token is caught.
pub fn spend_token(table: &str, tenant: &str, token_hash: &str) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Token,
        token_key(tenant, token_hash),
        "SET #status = :spent",
        Some("#status = :active"),
        Expr::default()
            .name("#status", "status")
            .value(":spent", value(TokenStatus::Spent)?)
            .value(":active", value(TokenStatus::Active)?),
    )
}

/// Extends a live session on rotation (never past its absolute expiry) and
/// records its use; fails (label [`AuthLabel::Session`]) if it was revoked or
/// has reached its absolute expiry. A session from before absolute expiries
/// gets `absolute_expires_at`.
pub fn touch_session(
    table: &str,
    tenant: &str,
    family_id: &str,
    token: &RefreshTokenRecord,
    now: i64,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Session,
        session_key(tenant, family_id),
        &format!(
            "SET {TTL_ATTRIBUTE} = :expires, last_used_at = :at, \
             absolute_expires_at = if_not_exists(absolute_expires_at, :absolute)"
        ),
        Some(
            "attribute_exists(pk) AND attribute_not_exists(revoked_at) \
             AND (attribute_not_exists(absolute_expires_at) OR absolute_expires_at > :now)",
        ),
        Expr::default()
            .value(":expires", value(token.expires_at)?)
            .value(":at", value(at)?)
            .value(":absolute", value(token.absolute_expires_at)?)
            .value(":now", value(now)?),
    )
}

/// Moves the caller's own live session to the user's new session epoch (a
/// password change keeps the session it was made in); fails (label
/// [`AuthLabel::Session`]) if it is not the user's or was revoked.
pub fn keep_session(
    table: &str,
    tenant: &str,
    family_id: &str,
    user_id: &str,
    session_epoch: u64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Session,
        session_key(tenant, family_id),
        "SET session_epoch = :epoch",
        Some("user_id = :user AND attribute_not_exists(revoked_at)"),
        Expr::default().value(":epoch", value(session_epoch)?).value(":user", value(user_id)?),
    )
}

/// Revokes one of the user's own sessions; fails (label
/// [`AuthLabel::Session`]) if it is not theirs or was already revoked (the
/// old item tells which).
pub fn revoke_own_session(
    table: &str,
    tenant: &str,
    family_id: &str,
    user_id: &str,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Session,
        session_key(tenant, family_id),
        "SET revoked_at = :at",
        Some("user_id = :user AND attribute_not_exists(revoked_at)"),
        Expr::default().value(":at", value(at)?).value(":user", value(user_id)?),
    )
}

/// Decodes a session item (e.g. the old image a cancelled transaction returned).
pub fn decode_session(item: Item) -> Result<SessionRecord, AppError> {
    #[derive(Deserialize)]
    struct Stored {
        #[serde(flatten)]
        record: SessionRecord,
    }
    Ok(from_item::<Stored>(item)?.record)
}

/// The user's most recent sessions (at most `limit`, newest first), from
/// `gsi1` (eventually consistent: a session opened a moment ago may be missing).
pub async fn list_for_user(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
    limit: i32,
) -> Result<Vec<SessionRecord>, AppError> {
    let output = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(user_sessions(tenant, user_id)))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list sessions", e))?;
    output.items.unwrap_or_default().into_iter().map(decode_session).collect()
}

/// Revokes a session (the whole token family); fails (label [`AuthLabel::Session`]) if it
/// was already revoked, so the revocation event is written once.
/// Deletes a session (token family) of an erased user: its record (creation
/// and use times, user agent) goes with them. Unconditional: a session
/// already gone is no conflict.
pub fn erase_session(table: &str, tenant: &str, family_id: &str) -> Result<Action<AuthLabel>, AppError> {
    Action::delete(table, AuthLabel::Session, session_key(tenant, family_id), None, Expr::default())
}

pub fn revoke_session(
    table: &str,
    tenant: &str,
    family_id: &str,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Session,
        session_key(tenant, family_id),
        "SET revoked_at = :at",
        Some("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
        Expr::default().value(":at", value(at)?),
    )
}
