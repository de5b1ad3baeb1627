//! The caller (`GET /v1/me`) and the tenant's users, for its owners and
//! admins: `GET /v1/users` (paged) and `PATCH /v1/users/{id}` (role, status;
//! or a display name, which a person also changes for themself).
//!
//! Rules of a change: owners and admins may change users; only an owner may
//! change an owner or make someone one; the tenant always keeps one active
//! owner. A change bumps the user's session epoch in the same transaction,
//! which revokes all their refresh-token families, so a stale role lives at
//! most one access-token lifetime.

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::{ADMINISTRATORS, Principal, PrincipalKind, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::paging::PageQuery;
use crate::ratelimit::{self, Counter};
use crate::store::labels::AuthLabel;
use crate::store::members::{self, MemberRecord};
use crate::store::tenants::{self, TenantStatus};
use crate::store::tx::{Tx, TxError};
use crate::store::users::UserStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;
const LAST_OWNER: &str = "the last owner of a tenant cannot be demoted or disabled";

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub id: String,
    pub kind: PrincipalKind,
    pub tenant_id: String,
    pub roles: Vec<Role>,
}

/// Who the caller is, from the verified token alone (no read).
pub fn me(who: &Authenticated) -> Me {
    let principal = &who.principal;
    Me {
        id: principal.id.clone(),
        kind: principal.kind,
        tenant_id: principal.tenant.to_string(),
        roles: principal.roles.clone(),
    }
}

/// A user as administrators see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub status: UserStatus,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The display name, in the answer to its change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl UserView {
    /// The entry as shown, with its email (opened: one read of the user's
    /// key and one KMS `Decrypt`, unless the entry still has the plaintext).
    async fn of(app: &App, member: MemberRecord) -> Result<Self, AppError> {
        let email = crate::privacy::personal::shown(
            app,
            &member.tenant_id,
            &member.user_id,
            crate::privacy::personal::EMAIL,
            member.email.as_deref(),
            member.email_sealed.as_deref(),
        )
        .await?;
        Ok(Self::with_email(member, email))
    }

    fn with_email(member: MemberRecord, email: Option<String>) -> Self {
        Self {
            user_id: member.user_id,
            email: email.unwrap_or_default(),
            role: member.role,
            status: member.status,
            created_at: member.created_at,
            updated_at: member.updated_at,
            display_name: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UsersPage {
    pub users: Vec<UserView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/users?limit=&cursor=`: one consistent Query of the directory.
pub async fn list(
    app: &App,
    who: &Authenticated,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<UsersPage, AppError> {
    who.principal.require_any(&ADMINISTRATORS)?;
    let page = PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let (members, next_cursor) = members::page(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        page.limit,
        page.after.as_deref(),
    )
    .await?;
    let emails = crate::privacy::personal::shown_emails(app, who.tenant.as_str(), &members).await?;
    let users = members.into_iter().zip(emails).map(|(m, email)| UserView::with_email(m, email)).collect();
    Ok(UsersPage { users, next_cursor })
}

/// `PATCH /v1/users/{id}`. Fields are strings, checked here, so an invalid
/// value is named without being echoed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// Changed on its own (with role or status: 400), by the person or an
    /// owner or admin.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn status_of(text: &str) -> Result<UserStatus, AppError> {
    match text {
        "active" => Ok(UserStatus::Active),
        "disabled" => Ok(UserStatus::Disabled),
        _ => Err(AppError::bad_request("status", "status: must be active or disabled")),
    }
}

/// Active owners are the ones that keep a tenant administrable.
fn counts_as_owner(member: &MemberRecord) -> bool {
    member.role == Role::Owner && member.status == UserStatus::Active
}

/// Changes a user's role and/or status: one GetItem (the target's entry) and
/// one transaction, which holds the entry's change (conditional on what was
/// read), the user item's copy, the tenant (active; its owner count when an
/// active owner comes or goes, "more than one" when one goes) and the
/// caller's own entry (still allowed to do this), with the events.
pub async fn update(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    user_id: &str,
    change: UserChange,
) -> Result<UserView, AppError> {
    let caller = &who.principal;
    if let Some(raw) = change.display_name.as_deref() {
        let own = caller.kind == PrincipalKind::User && caller.id == user_id;
        let access = change.role.is_some() || change.status.is_some();
        if !own || access {
            caller.require_any(&ADMINISTRATORS)?;
        }
        if access {
            return Err(AppError::bad_request(
                "display_name",
                "display_name: change it on its own, without role or status",
            ));
        }
        let name = super::display_name("display_name", raw)?;
        return rename(app, ctx, who, user_id, &name, own).await;
    }
    caller.require_any(&ADMINISTRATORS)?;
    let role = change.role.as_deref().map(|r| Role::from_field("role", r)).transpose()?;
    let status = change.status.as_deref().map(status_of).transpose()?;
    if role.is_none() && status.is_none() {
        return Err(AppError::bad_request("body", "give role, status or both"));
    }
    if !crate::ids::is_valid_id(user_id) {
        return Err(AppError::NotFound("user"));
    }
    let table = &app.config.table_name;
    let tenant = caller.tenant.as_str();
    let before = members::find(&app.clients.dynamodb, table, tenant, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let touches_owner = before.role == Role::Owner || role == Some(Role::Owner);
    if touches_owner && !caller.is_owner() {
        return Err(AppError::forbidden("an admin cannot change an owner or make someone an owner"));
    }
    let required: &[Role] = if touches_owner { &[Role::Owner] } else { &ADMINISTRATORS };
    let now = app.now();
    let after = MemberRecord {
        role: role.unwrap_or(before.role),
        status: status.unwrap_or(before.status),
        session_epoch: before.session_epoch + 1,
        updated_at: Some(rfc3339(now)),
        ..before.clone()
    };
    if after.role == before.role && after.status == before.status {
        return UserView::of(app, before).await;
    }
    let changes_self = caller.kind == PrincipalKind::User && caller.id == before.user_id;
    // Acting on oneself: the read entry is the caller's own, and the
    // condition on it pins what was read, so it is the stored-state check.
    if changes_self && (!required.contains(&before.role) || before.status != UserStatus::Active) {
        return Err(AppError::forbidden("your current role does not allow this change"));
    }

    let events = change_events(ctx, caller, &before, &after, now);
    let owner_delta = i32::from(counts_as_owner(&after)) - i32::from(counts_as_owner(&before));
    let tenant_action = match owner_delta {
        0 => tenants::require_active(table, tenant)?,
        delta => tenants::change_owner_count(table, tenant, delta)?,
    };
    let (first, rest) =
        events.split_first().ok_or_else(|| AppError::Internal("a change without an event".into()))?;
    let mut tx = Tx::new(table, first)?;
    for event in rest {
        tx = tx.event(event)?;
    }
    tx = tx.push_all(members::access_change(table, &before, &after)?).push(tenant_action);
    if !changes_self {
        tx = tx.push(members::require_role(table, caller, required)?);
    }
    let limit = Counter::for_write(app, "update_user", caller);
    tx = tx.push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?);
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        ratelimit::refused(&error, AuthLabel::RateLimit, &limit, app.now())
            .unwrap_or_else(|| change_refused(error, owner_delta))
    })?;
    tracing::info!(
        tenant = %tenant,
        user_id = %user_id,
        role = %after.role,
        disabled = after.status == UserStatus::Disabled,
        "user access changed; sessions revoked"
    );
    UserView::of(app, after).await
}

/// A new display name, sealed with the person's key (a read of the key and
/// one KMS `Decrypt`): one GetItem (the entry), then one transaction of the
/// entry's change (conditional on its role, status and epoch as read), the
/// tenant active, the caller's role (unless it is their own name), the hit
/// on the write limit and `user.profile_changed` (ids only: the index reads
/// the name, sealed, from the entry). Sessions are not revoked.
async fn rename(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    user_id: &str,
    name: &str,
    own: bool,
) -> Result<UserView, AppError> {
    use crate::privacy::personal;
    if !crate::ids::is_valid_id(user_id) {
        return Err(AppError::NotFound("user"));
    }
    let caller = &who.principal;
    let table = &app.config.table_name;
    let tenant = caller.tenant.as_str();
    let before = members::find(&app.clients.dynamodb, table, tenant, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if !own && before.role == Role::Owner && !caller.is_owner() {
        return Err(AppError::forbidden("an admin cannot change an owner"));
    }
    if own && before.status != UserStatus::Active {
        return Err(AppError::forbidden("your account is not active"));
    }
    let key = personal::key_of(app, tenant, user_id).await?.ok_or(AppError::NotFound("user"))?;
    let sealed = key.seal(personal::DISPLAY_NAME, name)?;
    let now = app.now();
    let at = rfc3339(now);
    let event = OutboxEvent::new(
        &caller.tenant,
        "user",
        user_id,
        "user.profile_changed",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user_id, "fields": ["display_name"] }),
    )
    .by(&caller.actor());
    let limit = Counter::for_write(app, "update_user", caller);
    let mut tx = Tx::new(table, &event)?
        .push(members::set_display_name(table, &before, &sealed, &at)?)
        .push(tenants::require_active(table, tenant)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?);
    if !own {
        let required: &[Role] = if before.role == Role::Owner { &[Role::Owner] } else { &ADMINISTRATORS };
        tx = tx.push(members::require_role(table, caller, required)?);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        ratelimit::refused(&error, AuthLabel::RateLimit, &limit, app.now())
            .unwrap_or_else(|| change_refused(error, 0))
    })?;
    tracing::info!(tenant = %tenant, user_id = %user_id, by_self = own, "display name changed");
    let email = match (&before.email, &before.email_sealed) {
        (Some(plain), _) => Some(plain.clone()),
        (None, Some(sealed)) => Some(key.open(personal::EMAIL, sealed)?),
        (None, None) => None,
    };
    let after = MemberRecord { display_name_sealed: Some(sealed), updated_at: Some(at), ..before };
    let mut view = UserView::with_email(after, email);
    view.display_name = Some(name.to_owned());
    Ok(view)
}

/// `user.role_changed` and/or `user.enabled` / `user.disabled`, by the caller.
fn change_events(
    ctx: &RequestContext,
    caller: &Principal,
    before: &MemberRecord,
    after: &MemberRecord,
    now: time::OffsetDateTime,
) -> Vec<OutboxEvent> {
    let user_id = before.user_id.as_str();
    let event = |event_type: &str, payload: serde_json::Value| {
        OutboxEvent::new(&caller.tenant, "user", user_id, event_type, now, &ctx.correlation_id, payload)
            .by(&caller.actor())
    };
    let mut events = Vec::new();
    if after.role != before.role {
        events.push(event(
            "user.role_changed",
            json!({ "user_id": user_id, "role": after.role, "previous_role": before.role }),
        ));
    }
    if after.status != before.status {
        let event_type = match after.status {
            UserStatus::Disabled => "user.disabled",
            UserStatus::Active => "user.enabled",
        };
        events.push(event(event_type, json!({ "user_id": user_id })));
    }
    events
}

/// The answer to a cancelled change, by the action that failed.
fn change_refused(error: TxError<AuthLabel>, owner_delta: i32) -> AppError {
    // Authorization first: a caller who may not do this learns nothing more.
    if error.failed(AuthLabel::Caller).is_some() {
        return AppError::forbidden("your current role does not allow this change");
    }
    if let Some(failure) = error.failed(AuthLabel::Tenant) {
        let active = failure
            .item
            .clone()
            .and_then(|item| tenants::decode_item(item).ok())
            .is_some_and(|t| t.status == TenantStatus::Active);
        return if active && owner_delta < 0 {
            AppError::Conflict(LAST_OWNER.into())
        } else {
            crate::auth::service::tenant_refusal(failure)
        };
    }
    if error.failed(AuthLabel::Member).is_some() {
        return AppError::Conflict("the user was changed at the same time; read it again and retry".into());
    }
    error.into_app_error()
}
