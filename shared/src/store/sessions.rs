//! Sessions (refresh-token families) and refresh tokens. A refresh token is
//! stored only as its SHA-256 hash, in the key; rotation marks it spent.
//!
//! A family keeps the roles it was issued with and the user's session epoch
//! at the time; every token of the family carries both, so a refresh needs
//! no other read. That is sound because any role or status change bumps the
//! user's epoch, and a refresh requires the epoch to be unchanged.

use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, TTL_ATTRIBUTE, from_item, get, key, tenant_pk, value};
use crate::auth::principal::Role;
use crate::error::AppError;
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
}

fn token_key(tenant: &str, token_hash: &str) -> Item {
    key(tenant_pk(tenant, &format!("RT#{token_hash}")), "RT")
}

fn session_key(tenant: &str, family_id: &str) -> Item {
    key(tenant_pk(tenant, &format!("SESSION#{family_id}")), "SESSION")
}

pub fn insert_session(table: &str, session: &SessionRecord) -> Result<Action<AuthLabel>, AppError> {
    let pk = tenant_pk(&session.tenant_id, &format!("SESSION#{}", session.family_id));
    Keyed::new(pk, "SESSION", "session", session).version(SCHEMA_VERSION).insert(table, AuthLabel::Session)
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

/// Extends a live session on rotation; fails (label [`AuthLabel::Session`]) if it was revoked.
pub fn touch_session(
    table: &str,
    tenant: &str,
    family_id: &str,
    expires_at: i64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Session,
        session_key(tenant, family_id),
        &format!("SET {TTL_ATTRIBUTE} = :expires"),
        Some("attribute_exists(pk) AND attribute_not_exists(revoked_at)"),
        Expr::default().value(":expires", value(expires_at)?),
    )
}

/// Revokes a session (the whole token family); fails (label [`AuthLabel::Session`]) if it
/// was already revoked, so the revocation event is written once.
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
