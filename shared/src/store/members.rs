//! The tenant's directory of principals: one item per user in the tenant's
//! partition `T#<tenant>#MEMBERS`, sort key `USER#<user_id>`; the tenant's
//! machine clients are in the same partition under `CLIENT#<client_id>`
//! (their layout is in [`super::clients`]).
//!
//! It holds the access state by user id: role, status and the session epoch.
//! The user item (keyed by its email lookup hash, for login) carries the same three, written
//! in the same transaction; this one is what the id-addressed operations use:
//! refresh checks "still active, same epoch" with a ConditionCheck on it, the
//! admin routes read and change it, and writes that need a role re-check the
//! caller's entry. One partition per tenant lists the users in one
//! consistent Query.

use super::labels::AuthLabel;
use super::users::UserStatus;
use super::{Action, Expr, Item, Keyed, from_item, get, key, tenant_pk, value};
use crate::auth::principal::{Principal, PrincipalKind, Role};
use crate::error::AppError;
use crate::payments::ownership::Owner;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "member";
/// New entries: sealed email and lookup hash, no plaintext (the shape of
/// `users-seal-email` after `users-drop-plaintext-email`, which contracts the
/// entry together with its user item).
pub const SCHEMA_VERSION: u32 = super::user_layouts::SEALED_VERSION_MEMBERS;
const USER_PREFIX: &str = "USER#";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub tenant_id: String,
    pub user_id: String,
    /// The plaintext email of an entry the migration has not contracted
    /// (its user item is then still keyed by it); never in events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The email's lookup hash (the user item's key once migrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_lookup: Option<String>,
    /// The email sealed with the user's key, for the tenant's administrators
    /// (`GET /v1/users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_sealed: Option<String>,
    /// The person's display name sealed with their key (shown by the people
    /// search; personal data: never in plaintext, events or the index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name_sealed: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub session_epoch: u64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl MemberRecord {
    /// The key name of the user's item: the plaintext email while the
    /// entry has it (the migration moves the item and drops the entry's
    /// plaintext in one transaction), else the lookup hash.
    pub fn user_key_name(&self) -> Option<&str> {
        self.email.as_deref().or(self.email_lookup.as_deref())
    }
}

pub(super) fn directory(tenant: &str) -> String {
    tenant_pk(tenant, "MEMBERS")
}

pub(crate) fn member_key(tenant: &str, user_id: &str) -> Item {
    key(directory(tenant), &format!("{USER_PREFIX}{user_id}"))
}

fn keyed(member: &MemberRecord) -> Keyed<'_, MemberRecord> {
    // The shape decides the version: an entry made for a user not yet sealed is v1.
    Keyed::new(directory(&member.tenant_id), format!("{USER_PREFIX}{}", member.user_id), KIND, member)
        .version(if member.email_sealed.is_some() { SCHEMA_VERSION } else { 1 })
}

/// Adds a user to the directory; fails (label `member`) if present.
pub fn insert(table: &str, member: &MemberRecord) -> Result<Action<AuthLabel>, AppError> {
    keyed(member).insert(table, AuthLabel::Member)
}

/// A user's entry as an item (the migration creates it for users that
/// predate the directory).
pub(crate) fn item(member: &MemberRecord) -> Result<Item, AppError> {
    keyed(member).item()
}

/// Deletes a user's entry for their erasure (label `member`), if its role
/// and epoch are still as read. Without it no refresh token of theirs
/// refreshes (a refresh checks the entry) and no id-addressed operation
/// finds them.
pub fn erase(table: &str, member: &MemberRecord) -> Result<Action<AuthLabel>, AppError> {
    Action::delete(
        table,
        AuthLabel::Member,
        member_key(&member.tenant_id, &member.user_id),
        Some("#role = :role AND session_epoch = :epoch"),
        Expr::default()
            .name("#role", "role")
            .value(":role", value(member.role)?)
            .value(":epoch", value(member.session_epoch)?),
    )
}

/// A new sealed display name on a user's entry (label `member`), if the
/// entry is still as read (role, status and epoch).
pub fn set_display_name(
    table: &str,
    member: &MemberRecord,
    sealed: &str,
    at: &str,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Member,
        member_key(&member.tenant_id, &member.user_id),
        "SET display_name_sealed = :name, updated_at = :at",
        Some("#role = :role AND #status = :status AND session_epoch = :epoch"),
        Expr::default()
            .name("#role", "role")
            .name("#status", "status")
            .value(":status", value(member.status)?)
            .value(":name", value(sealed)?)
            .value(":at", value(at)?)
            .value(":role", value(member.role)?)
            .value(":epoch", value(member.session_epoch)?),
    )
}

/// A user's entry (strongly consistent).
pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
) -> Result<Option<MemberRecord>, AppError> {
    get(dynamodb, table, member_key(tenant, user_id)).await?.map(from_item).transpose()
}

/// One page of the tenant's users in id order (so creation order: UUIDv7),
/// strongly consistent, after the user id `after`. Returns the users and the
/// id to continue after, when there may be more.
pub async fn page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    limit: i32,
    after: Option<&str>,
) -> Result<(Vec<MemberRecord>, Option<String>), AppError> {
    let start = format!("{USER_PREFIX}{}", after.unwrap_or_default());
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :start AND :end")
        .expression_attribute_values(":pk", AttributeValue::S(directory(tenant)))
        // After `start` and still a user: '$' sorts right after '#'.
        .expression_attribute_values(":start", AttributeValue::S(format!("{start}\u{1}")))
        .expression_attribute_values(":end", AttributeValue::S("USER$".to_owned()))
        .consistent_read(true)
        .limit(limit)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list users", e))?;
    let members: Vec<MemberRecord> =
        output.items.unwrap_or_default().into_iter().map(from_item).collect::<Result<_, _>>()?;
    let next = output.last_evaluated_key.and(members.last().map(|m| m.user_id.clone()));
    Ok((members, next))
}

fn user_status_expr(expr: Expr) -> Result<Expr, AppError> {
    Ok(expr.name("#status", "status").value(":active", value(UserStatus::Active)?))
}

/// The user is active and its sessions belong to `session_epoch` (label
/// `member`): what a refresh must find.
pub fn require_session_epoch(
    table: &str,
    tenant: &str,
    user_id: &str,
    session_epoch: u64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::condition_check(
        table,
        AuthLabel::Member,
        member_key(tenant, user_id),
        "#status = :active AND session_epoch = :epoch",
        user_status_expr(Expr::default().value(":epoch", value(session_epoch)?))?,
    )
}

/// The caller is active and holds one of `roles` now (label `caller`): the
/// stored-state half of an authorization whose token half was checked first.
/// A machine client is checked on its own entry ([`super::clients::require_role`]).
pub fn require_role(table: &str, caller: &Principal, roles: &[Role]) -> Result<Action<AuthLabel>, AppError> {
    require_role_as(table, AuthLabel::Caller, caller, roles)
}

/// [`require_role`] in a transaction of another kind, labelled `label`.
pub fn require_role_as<L>(
    table: &str,
    label: L,
    caller: &Principal,
    roles: &[Role],
) -> Result<Action<L>, AppError> {
    if caller.kind == PrincipalKind::Client {
        return super::clients::require_role_as(table, label, caller, roles);
    }
    let mut expr = user_status_expr(Expr::default().name("#role", "role"))?;
    let mut placeholders = Vec::new();
    for (n, role) in roles.iter().enumerate() {
        let placeholder = format!(":role{n}");
        expr = expr.value(&placeholder, value(role)?);
        placeholders.push(placeholder);
    }
    Action::condition_check(
        table,
        label,
        member_key(caller.tenant.as_str(), &caller.id),
        &format!("#status = :active AND #role IN ({})", placeholders.join(", ")),
        expr,
    )
}

/// `user_id` is an active user of `tenant` (label `label`): e.g. someone
/// being made a participant of a conversation.
pub fn require_active_user_as<L>(
    table: &str,
    label: L,
    tenant: &str,
    user_id: &str,
) -> Result<Action<L>, AppError> {
    Action::condition_check(
        table,
        label,
        member_key(tenant, user_id),
        "#status = :active",
        user_status_expr(Expr::default())?,
    )
}

/// The user or client `owner` names is in the tenant's directory (label
/// `label`); `None` for the tenant itself, which needs no entry.
pub fn require_listed<L>(
    table: &str,
    label: L,
    tenant: &str,
    owner: &Owner,
) -> Result<Option<Action<L>>, AppError> {
    let sort_key = match owner {
        Owner::Tenant => return Ok(None),
        Owner::User(id) => format!("{USER_PREFIX}{id}"),
        Owner::Client(id) => format!("{}{id}", super::clients::PREFIX),
    };
    let key = key(directory(tenant), &sort_key);
    Action::condition_check(table, label, key, "attribute_exists(pk)", Expr::default()).map(Some)
}

/// A user's access lives on two items, changed together: the directory entry
/// (from what was read, [`change_access`]) and the user item login reads.
pub fn access_change(
    table: &str,
    before: &MemberRecord,
    after: &MemberRecord,
) -> Result<[Action<AuthLabel>; 2], AppError> {
    let key_name = before.user_key_name().ok_or(AppError::NotFound("user"))?;
    Ok([
        change_access(table, before, after)?,
        super::users::set_access(
            table,
            &before.tenant_id,
            key_name,
            after.role,
            after.status,
            after.session_epoch,
        )?,
    ])
}

/// Changes a user's role and status from what was read (`before`) and bumps
/// the session epoch (revoking every refresh-token family of the user);
/// fails (label `member`) if the entry changed since it was read.
pub fn change_access(
    table: &str,
    before: &MemberRecord,
    after: &MemberRecord,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Member,
        member_key(&before.tenant_id, &before.user_id),
        "SET #role = :role, #status = :status, session_epoch = :epoch, updated_at = :at",
        Some("#role = :old_role AND #status = :old_status AND session_epoch = :old_epoch"),
        Expr::default()
            .name("#role", "role")
            .name("#status", "status")
            .value(":role", value(after.role)?)
            .value(":status", value(after.status)?)
            .value(":epoch", value(after.session_epoch)?)
            .value(":at", value(&after.updated_at)?)
            .value(":old_role", value(before.role)?)
            .value(":old_status", value(before.status)?)
            .value(":old_epoch", value(before.session_epoch)?),
    )
}
