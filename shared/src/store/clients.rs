//! Machine clients (OAuth 2.0 client credentials): one entry per client in
//! the tenant's directory, pk `T#<tenant>#MEMBERS`, sk `CLIENT#<client_id>`,
//! kind `client`, beside the users' `USER#` entries (which the users' listing
//! keeps to).
//!
//! It holds the client's name, roles and status, and its secret only as a
//! SHA-256 hash: the current one and, after a rotation, the previous one with
//! the end of its grace period (epoch seconds, not the TTL attribute: the
//! entry outlives it). Revocation keeps the entry as a tombstone without any
//! hash. The token endpoint reads the entry with the tenant item in one
//! BatchGetItem; the admin writes change it conditional on it being active;
//! a client acting as an administrator is re-checked on it.

use super::labels::AuthLabel;
use super::members::directory;
use super::tenants::{self, TenantRecord};
use super::{Action, Expr, Item, Keyed, from_item, get_many, key, value};
use crate::auth::principal::{Actor, Principal, Role};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "client";
pub const SCHEMA_VERSION: u32 = 1;
pub(super) const PREFIX: &str = "CLIENT#";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    Active,
    /// No secret is accepted any more; the entry stays for the record.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub tenant_id: String,
    pub client_id: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub status: ClientStatus,
    /// SHA-256 of the current secret (none once revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    /// SHA-256 of the secret before the last rotation...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_hash: Option<String>,
    /// ...accepted before this time (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: String,
    pub created_by: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn client_key(tenant: &str, client_id: &str) -> Item {
    key(directory(tenant), &format!("{PREFIX}{client_id}"))
}

/// Adds a client to the directory; fails (label `client`) if present.
pub fn insert(table: &str, client: &ClientRecord) -> Result<Action<AuthLabel>, AppError> {
    Keyed::new(directory(&client.tenant_id), format!("{PREFIX}{}", client.client_id), KIND, client)
        .version(SCHEMA_VERSION)
        .insert(table, AuthLabel::Client)
}

/// The client and its tenant, strongly consistent, in one BatchGetItem: all
/// the token endpoint reads.
pub async fn find_with_tenant(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    client_id: &str,
) -> Result<(Option<ClientRecord>, Option<TenantRecord>), AppError> {
    let keys = vec![client_key(tenant, client_id), tenants::tenant_key(tenant)];
    let mut found = get_many(dynamodb, table, keys).await?.into_iter();
    let client = found.next().flatten().map(decode_item).transpose()?;
    let tenant = found.next().flatten().map(tenants::decode_item).transpose()?;
    Ok((client, tenant))
}

/// Decodes a client entry, e.g. the old image a cancelled transaction returned.
pub fn decode_item(item: Item) -> Result<ClientRecord, AppError> {
    from_item(item)
}

/// "Active", and with `roles` also "holds one of them" (a list attribute:
/// `contains` matches an element).
fn guard(roles: Option<&[Role]>) -> Result<(String, Expr), AppError> {
    let mut expr = Expr::default().name("#status", "status").value(":active", value(ClientStatus::Active)?);
    let Some(roles) = roles else { return Ok(("#status = :active".to_owned(), expr)) };
    if roles.is_empty() {
        return Err(AppError::Internal("a role condition without roles".into()));
    }
    expr = expr.name("#roles", "roles");
    let mut terms = Vec::new();
    for (n, role) in roles.iter().enumerate() {
        let placeholder = format!(":role{n}");
        expr = expr.value(&placeholder, value(role)?);
        terms.push(format!("contains(#roles, {placeholder})"));
    }
    Ok((format!("#status = :active AND ({})", terms.join(" OR ")), expr))
}

/// The calling client is active and holds one of `roles` now (labelled
/// `label`: `caller` in access transactions, the payments' own in theirs).
pub fn require_role_as<L>(
    table: &str,
    label: L,
    caller: &Principal,
    roles: &[Role],
) -> Result<Action<L>, AppError> {
    let (condition, expr) = guard(Some(roles))?;
    let key = client_key(caller.tenant.as_str(), &caller.id);
    Action::condition_check(table, label, key, &condition, expr)
}

/// The entry a change applies to: an active client's, and when the caller
/// is that client itself, one still holding one of `caller_roles` (its
/// role check cannot be a second action on the same item).
pub struct Target<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub caller_roles: Option<&'a [Role]>,
}

impl Target<'_> {
    /// An update of the entry under the target's condition (label `client`).
    fn update(
        &self,
        table: &str,
        update: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Action<AuthLabel>, AppError> {
        let (condition, mut expr) = guard(self.caller_roles)?;
        for (placeholder, value) in values {
            expr = expr.value(placeholder, value.clone());
        }
        Action::update(
            table,
            AuthLabel::Client,
            client_key(self.tenant, self.client_id),
            update,
            Some(&condition),
            expr,
        )
    }
}

/// Replaces the target's secret: the current hash becomes the previous one,
/// accepted until `previous_until`. No read: the update moves the stored
/// hash itself.
pub fn rotate_secret(
    table: &str,
    target: &Target<'_>,
    secret_hash: &str,
    previous_until: i64,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    target.update(
        table,
        "SET previous_secret_hash = secret_hash, previous_secret_expires_at = :until, \
         secret_hash = :hash, updated_at = :at",
        &[(":until", value(previous_until)?), (":hash", value(secret_hash)?), (":at", value(at)?)],
    )
}

/// Revokes the target: no secret is kept.
pub fn revoke(table: &str, target: &Target<'_>, at: &str) -> Result<Action<AuthLabel>, AppError> {
    target.update(
        table,
        "SET #status = :revoked, revoked_at = :at, updated_at = :at \
         REMOVE secret_hash, previous_secret_hash, previous_secret_expires_at",
        &[(":revoked", value(ClientStatus::Revoked)?), (":at", value(at)?)],
    )
}
