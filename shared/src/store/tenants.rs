//! Tenant items: one per tenant, pk `T#<tenant>#TENANT`, sk `TENANT`, listed
//! for the operator in `gsi1` under `TENANTS` (sorted by tenant id).
//!
//! Registration, login, refresh and the admin writes check the tenant inside
//! their own transaction (a ConditionCheck or Update on this item), never with
//! a read of their own. `owner_count` counts the active owners, so "a tenant
//! keeps at least one owner" is a condition on the same write that would
//! remove one.

use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, from_item, get, key, tenant_pk, value};
use crate::auth::principal::Role;
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "tenant";
pub const SCHEMA_VERSION: u32 = 1;
const SORT_KEY: &str = "TENANT";
/// The `gsi1` partition listing every tenant (operator only).
const REGISTRY: &str = "TENANTS";
const REGISTRY_INDEX: &str = "gsi1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    /// Login, refresh and registration are refused; issued access tokens
    /// run out within their lifetime.
    Suspended,
}

/// Who may register without being invited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signup {
    /// Registration needs an invitation (the default).
    #[default]
    InviteOnly,
    /// Anyone may register, as a `member`.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub tenant_id: String,
    pub name: String,
    pub signup: Signup,
    pub status: TenantStatus,
    /// Active owners.
    #[serde(default)]
    pub owner_count: u32,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<String>,
    /// Roles whose users must sign in with a second factor: until they
    /// enrol one, a login gives them an enrolment-only `mfa_token`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mfa_required_roles: Vec<Role>,
}

pub(super) fn tenant_key(tenant: &str) -> Item {
    key(tenant_pk(tenant, SORT_KEY), SORT_KEY)
}

fn keyed(tenant: &TenantRecord) -> Keyed<'_, TenantRecord> {
    Keyed::new(tenant_pk(&tenant.tenant_id, SORT_KEY), SORT_KEY, KIND, tenant)
        .indexed(REGISTRY.to_owned(), tenant.tenant_id.clone())
        .version(SCHEMA_VERSION)
}

/// Creates the tenant; fails (label `tenant`) if it exists.
pub fn insert(table: &str, tenant: &TenantRecord) -> Result<Action<AuthLabel>, AppError> {
    keyed(tenant).insert(table, AuthLabel::Tenant)
}

/// The record a tenant whose items predate tenant records is given by the
/// migrations (created only if absent): active and open to signup, as such a
/// tenant behaved, named by its id, with no owner yet (the operator invites
/// one: docs/RUNBOOK.md), dated `created_at` (of the item it was found by).
pub fn backfilled(tenant_id: &str, created_at: &str) -> Result<Item, AppError> {
    let record = TenantRecord {
        tenant_id: tenant_id.to_owned(),
        name: tenant_id.to_owned(),
        signup: Signup::Open,
        status: TenantStatus::Active,
        owner_count: 0,
        created_at: created_at.to_owned(),
        updated_at: created_at.to_owned(),
        suspended_at: None,
        mfa_required_roles: Vec::new(),
    };
    keyed(&record).item()
}

pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Option<TenantRecord>, AppError> {
    get(dynamodb, table, tenant_key(tenant)).await?.map(decode_item).transpose()
}

/// Decodes a tenant item, e.g. the old image a cancelled transaction returned.
pub fn decode_item(item: Item) -> Result<TenantRecord, AppError> {
    from_item(item)
}

/// One page of the tenant registry, by tenant id, after `after` (eventually
/// consistent: the registry is an index). Returns the tenants and the id to
/// continue after, when there may be more.
pub async fn page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    limit: i32,
    after: Option<&str>,
) -> Result<(Vec<TenantRecord>, Option<String>), AppError> {
    let mut query = dynamodb
        .query()
        .table_name(table)
        .index_name(REGISTRY_INDEX)
        .expression_attribute_values(":registry", AttributeValue::S(REGISTRY.to_owned()))
        .limit(limit);
    query = match after {
        Some(after) => query
            .key_condition_expression("gsi1pk = :registry AND gsi1sk > :after")
            .expression_attribute_values(":after", AttributeValue::S(after.to_owned())),
        None => query.key_condition_expression("gsi1pk = :registry"),
    };
    let output = query.send().await.map_err(|e| AppError::from_sdk("list tenants", e))?;
    let tenants: Vec<TenantRecord> =
        output.items.unwrap_or_default().into_iter().map(decode_item).collect::<Result<_, _>>()?;
    let next = output.last_evaluated_key.and(tenants.last().map(|t| t.tenant_id.clone()));
    Ok((tenants, next))
}

/// Replaces the settings (name, signup, the roles that must use a second
/// factor) of an existing tenant.
pub fn update_settings(table: &str, tenant: &TenantRecord) -> Result<Action<AuthLabel>, AppError> {
    let expr = Expr::default()
        .name("#name", "name")
        .value(":name", value(&tenant.name)?)
        .value(":signup", value(tenant.signup)?)
        .value(":at", value(&tenant.updated_at)?);
    let (update, expr) = match tenant.mfa_required_roles.is_empty() {
        true => ("SET #name = :name, signup = :signup, updated_at = :at REMOVE mfa_required_roles", expr),
        false => (
            "SET #name = :name, signup = :signup, updated_at = :at, mfa_required_roles = :mfa_roles",
            expr.value(":mfa_roles", value(&tenant.mfa_required_roles)?),
        ),
    };
    Action::update(
        table,
        AuthLabel::Tenant,
        tenant_key(&tenant.tenant_id),
        update,
        Some("attribute_exists(pk)"),
        expr,
    )
}

/// Moves the tenant from `from` to `to`; fails (label `tenant`) if it is
/// missing or not in `from`, so each transition is written (and announced) once.
pub fn set_status(
    table: &str,
    tenant: &str,
    from: TenantStatus,
    to: TenantStatus,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    let update = match to {
        TenantStatus::Suspended => "SET #status = :to, updated_at = :at, suspended_at = :at",
        TenantStatus::Active => "SET #status = :to, updated_at = :at REMOVE suspended_at",
    };
    Action::update(
        table,
        AuthLabel::Tenant,
        tenant_key(tenant),
        update,
        Some("#status = :from"),
        Expr::default()
            .name("#status", "status")
            .value(":from", value(from)?)
            .value(":to", value(to)?)
            .value(":at", value(at)?),
    )
}

fn active() -> Result<Expr, AppError> {
    Ok(Expr::default().name("#status", "status").value(":active", value(TenantStatus::Active)?))
}

/// The tenant exists and is active (label `tenant`).
pub fn require_active(table: &str, tenant: &str) -> Result<Action<AuthLabel>, AppError> {
    require_active_as(table, AuthLabel::Tenant, tenant)
}

/// [`require_active`] in a transaction of another kind, labelled `label`.
pub fn require_active_as<L>(table: &str, label: L, tenant: &str) -> Result<Action<L>, AppError> {
    Action::condition_check(table, label, tenant_key(tenant), "#status = :active", active()?)
}

/// The tenant exists, is active, and does not require a second factor of
/// `role` (label `tenant`): what a login without one must find. A failure
/// returns the tenant item, which tells the two apart.
pub fn require_active_without_mfa_for(
    table: &str,
    tenant: &str,
    role: Role,
) -> Result<Action<AuthLabel>, AppError> {
    Action::condition_check(
        table,
        AuthLabel::Tenant,
        tenant_key(tenant),
        "#status = :active AND NOT contains(mfa_required_roles, :role)",
        active()?.value(":role", value(role)?),
    )
}

/// The tenant exists, is active and lets anyone register (label `tenant`).
pub fn require_open_signup(table: &str, tenant: &str) -> Result<Action<AuthLabel>, AppError> {
    Action::condition_check(
        table,
        AuthLabel::Tenant,
        tenant_key(tenant),
        "#status = :active AND signup = :open",
        active()?.value(":open", value(Signup::Open)?),
    )
}

/// Counts one active owner more or less, on an active tenant (label
/// `tenant`). Removing one needs another to remain: the last owner stays.
pub fn change_owner_count(table: &str, tenant: &str, delta: i32) -> Result<Action<AuthLabel>, AppError> {
    let (update, condition) = if delta < 0 {
        ("SET owner_count = owner_count - :one", "#status = :active AND owner_count > :one")
    } else {
        ("SET owner_count = if_not_exists(owner_count, :zero) + :one", "#status = :active")
    };
    let mut expr = active()?.value(":one", value(1u32)?);
    if delta >= 0 {
        expr = expr.value(":zero", value(0u32)?);
    }
    Action::update(table, AuthLabel::Tenant, tenant_key(tenant), update, Some(condition), expr)
}
