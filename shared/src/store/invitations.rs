//! Invitation items: pk `T#<tenant>#INVITATION#<token hash>`, sk
//! `INVITATION`. The token itself is never stored, only its SHA-256 (in the
//! key, like refresh tokens); the email it is bound to is stored only as a
//! hash keyed by the token ([`crate::auth::invitation_token::email_binding`]).
//! Registration consumes the item with one conditional update in its own
//! transaction: unused, unexpired, same email.

use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, TTL_ATTRIBUTE, from_item, get, key, tenant_pk, value};
use crate::auth::principal::{Actor, Role};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "invitation";
pub const SCHEMA_VERSION: u32 = 1;
const SORT_KEY: &str = "INVITATION";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRecord {
    pub tenant_id: String,
    /// Names the invitation in events and answers (the token hash never leaves the table).
    pub invitation_id: String,
    pub role: Role,
    pub email_binding: String,
    pub invited_by: Actor,
    pub created_at: String,
    /// Epoch seconds; also the TTL attribute. Checked in code and in the
    /// consuming condition: TTL deletes late.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

fn invitation_pk(tenant: &str, token_hash: &str) -> String {
    tenant_pk(tenant, &format!("INVITATION#{token_hash}"))
}

pub fn insert(
    table: &str,
    token_hash: &str,
    invitation: &InvitationRecord,
) -> Result<Action<AuthLabel>, AppError> {
    Keyed::new(invitation_pk(&invitation.tenant_id, token_hash), SORT_KEY, KIND, invitation)
        .version(SCHEMA_VERSION)
        .insert(table, AuthLabel::Invitation)
}

pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    token_hash: &str,
) -> Result<Option<InvitationRecord>, AppError> {
    let item: Option<Item> = get(dynamodb, table, key(invitation_pk(tenant, token_hash), SORT_KEY)).await?;
    item.map(from_item).transpose()
}

/// Marks the invitation used by `user_id`, if it is still unused, unexpired
/// at `now` and bound to the email of `email_binding` (label `invitation`).
pub fn consume(
    table: &str,
    tenant: &str,
    token_hash: &str,
    email_binding: &str,
    user_id: &str,
    now: i64,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Invitation,
        key(invitation_pk(tenant, token_hash), SORT_KEY),
        "SET used_at = :at, used_by = :user",
        Some(&format!(
            "attribute_exists(pk) AND attribute_not_exists(used_at) AND {TTL_ATTRIBUTE} > :now \
             AND email_binding = :binding"
        )),
        Expr::default()
            .value(":at", value(at)?)
            .value(":user", value(user_id)?)
            .value(":now", value(now)?)
            .value(":binding", value(email_binding)?),
    )
}
