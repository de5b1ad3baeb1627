//! Registration into an existing, active tenant: open signup, or an invitation
//! consumed in the same transaction.

use super::*;
use crate::privacy::personal;
use crate::ratelimit::{self, Counter};
use crate::store::user_keys;

/// Registers, limited per source IP: the hit rides in the registration's
/// transaction, and a refusal (which cancels it) is counted on its own.
pub async fn register(
    app: &App,
    ctx: &RequestContext,
    request: Registration,
) -> Result<RegisteredUser, AppError> {
    let limit =
        Counter::per_source("register", &ctx.source_ip, app.config.rate_limits.register_ip, app.now());
    match admit(app, ctx, request, &limit).await {
        Err(refused @ (AppError::Forbidden(_) | AppError::Conflict(_))) => {
            ratelimit::consume(app, &limit).await?;
            Err(refused)
        }
        other => other,
    }
}

async fn admit(
    app: &App,
    ctx: &RequestContext,
    request: Registration,
    limit: &Counter,
) -> Result<RegisteredUser, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_new_password(&request.password)?;
    let display_name = request
        .display_name
        .as_deref()
        .map(|n| crate::access::display_name("display_name", n))
        .transpose()?;
    let table = &app.config.table_name;
    let now = app.now();
    // An invitation is read first (one GetItem) to learn its role; the
    // transaction below consumes it under the conditions that make it valid.
    let invitation = match request.invitation.as_deref() {
        Some(token) => Some(invitation_of(app, &tenant, &email, token, now.unix_timestamp()).await?),
        None => None,
    };
    let cost = app.config.argon2;
    let password = request.password;
    let password_hash = blocking(move || password::hash(cost, &password)).await??;
    let role = invitation.as_ref().map_or(Role::Member, |i| i.record.role);
    // The email is stored only sealed with the user's own key, and found by
    // its keyed hash (crate::privacy).
    let user_id = crate::ids::new_id();
    let lookup = crate::privacy::lookup::email(app, tenant.as_str(), &email).await?;
    let (key, key_record) = personal::new_key(app, tenant.as_str(), &user_id).await?;
    let sealed = key.seal(personal::EMAIL, email.as_str())?;
    let sealed_name = display_name.as_deref().map(|n| key.seal(personal::DISPLAY_NAME, n)).transpose()?;
    let user = new_user(&tenant, user_id, lookup, sealed, password_hash, role, now);
    let invitation_id = invitation.as_ref().map(|i| i.record.invitation_id.clone());
    let event = OutboxEvent::new(
        &tenant,
        "user",
        &user.user_id,
        "user.registered",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.user_id, "role": role, "invitation_id": invitation_id }),
    )
    .by(&Actor::user(&user.user_id));
    let [user_put, legacy_email_free] = users::insert(table, &user, email.as_str())?;
    let tx = Tx::new(table, &event)?
        .push(user_put)
        .push(legacy_email_free)
        .push(members::insert(table, &MemberRecord { display_name_sealed: sealed_name, ..member_of(&user) })?)
        .push(user_keys::insert(table, &key_record)?);
    let tx = admitted(tx, table, ctx, &user, invitation.as_ref(), now)?.push(ratelimit::action(
        table,
        AuthLabel::RateLimit,
        limit,
    )?);
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        if let Some(limited) = ratelimit::refused(&error, AuthLabel::RateLimit, limit, now) {
            limited
        } else if error.failed(AuthLabel::Tenant).is_some() || error.failed(AuthLabel::Invitation).is_some() {
            tracing::info!(tenant = %tenant, "registration refused");
            AppError::forbidden(REGISTRATION_REFUSED)
        } else if error.failed(AuthLabel::User).is_some() {
            AppError::Conflict("a user with this email already exists in this tenant".into())
        } else {
            error.into_app_error()
        }
    })?;
    tracing::info!(user_id = %user.user_id, tenant = %tenant, role = %role, "user registered");
    Ok(RegisteredUser {
        user_id: user.user_id,
        tenant_id: user.tenant_id,
        email: email.as_str().to_owned(),
        display_name,
        role,
        created_at: user.created_at,
    })
}

fn new_user(
    tenant: &TenantId,
    user_id: String,
    lookup: String,
    sealed: String,
    password_hash: String,
    role: Role,
    now: time::OffsetDateTime,
) -> UserRecord {
    UserRecord {
        tenant_id: tenant.to_string(),
        user_id,
        email: None,
        email_lookup: Some(lookup.clone()),
        email_sealed: Some(sealed),
        key_name: lookup,
        password_hash,
        created_at: rfc3339(now),
        created_at_ms: Some(now.unix_timestamp() * 1000),
        last_login_at: None,
        failed_logins: 0,
        failed_window_started_at: None,
        locked_until: None,
        role,
        status: UserStatus::Active,
        session_epoch: 0,
        devices: Some(Default::default()),
        mfa: None,
    }
}

/// The new user's directory entry (same role, status and epoch).
fn member_of(user: &UserRecord) -> MemberRecord {
    MemberRecord {
        tenant_id: user.tenant_id.clone(),
        user_id: user.user_id.clone(),
        email: None,
        email_lookup: user.email_lookup.clone(),
        email_sealed: user.email_sealed.clone(),
        display_name_sealed: None,
        role: user.role,
        status: user.status,
        session_epoch: user.session_epoch,
        created_at: user.created_at.clone(),
        updated_at: None,
    }
}

/// Adds what admits the user to the registration's transaction: for open
/// signup, "the tenant exists, is active and open" in one condition; with an
/// invitation, the invitation consumed under the conditions that make it
/// valid, the tenant active (an owner also counted), and `invitation.accepted`.
fn admitted(
    tx: Tx<AuthLabel>,
    table: &str,
    ctx: &RequestContext,
    user: &UserRecord,
    invitation: Option<&PresentedInvitation>,
    now: time::OffsetDateTime,
) -> Result<Tx<AuthLabel>, AppError> {
    let tenant = user.tenant_id.as_str();
    let Some(invitation) = invitation else {
        return Ok(tx.push(tenants::require_open_signup(table, tenant)?));
    };
    let accepted = OutboxEvent::new(
        &tenant_of(tenant)?,
        "invitation",
        &invitation.record.invitation_id,
        "invitation.accepted",
        now,
        &ctx.correlation_id,
        json!({ "invitation_id": invitation.record.invitation_id, "user_id": user.user_id, "role": user.role }),
    )
    .by(&Actor::user(&user.user_id));
    let tenant_check = if user.role == Role::Owner {
        tenants::change_owner_count(table, tenant, 1)?
    } else {
        tenants::require_active(table, tenant)?
    };
    Ok(tx.event(&accepted)?.push(tenant_check).push(invitations::consume(
        table,
        tenant,
        &invitation.token_hash,
        &invitation.email_binding,
        &user.user_id,
        now.unix_timestamp(),
        &user.created_at,
    )?))
}

/// A presented invitation, checked against its stored item.
struct PresentedInvitation {
    token_hash: String,
    email_binding: String,
    record: InvitationRecord,
}

/// Reads the invitation `token` is for. Every way of not being a valid
/// invitation for this tenant and email (malformed, another tenant's, unknown,
/// used, expired, another email) gets the same answer, which is also the
/// answer for an unknown tenant: registration reveals no tenant.
async fn invitation_of(
    app: &App,
    tenant: &TenantId,
    email: &Email,
    token: &str,
    now: i64,
) -> Result<PresentedInvitation, AppError> {
    let refused = || AppError::forbidden(REGISTRATION_REFUSED);
    let (token_tenant, token_hash) = invitation_token::parse(token).ok_or_else(refused)?;
    if &token_tenant != tenant {
        return Err(refused());
    }
    let table = &app.config.table_name;
    let record = invitations::find(&app.clients.dynamodb, table, tenant.as_str(), &token_hash)
        .await?
        .ok_or_else(refused)?;
    let email_binding = invitation_token::email_binding(token, email);
    if record.used_at.is_some() || record.expires_at <= now || record.email_binding != email_binding {
        tracing::info!(tenant = %tenant, invitation_id = %record.invitation_id, "invitation refused");
        return Err(refused());
    }
    Ok(PresentedInvitation { token_hash, email_binding, record })
}

/// The answer to a login, refresh or admin write in a tenant that is not
/// active, from the tenant item its failed condition returned.
pub(crate) fn tenant_refusal(failure: &Failure<AuthLabel>) -> AppError {
    let suspended = failure
        .item
        .clone()
        .and_then(|item| tenants::decode_item(item).ok())
        .is_some_and(|t| t.status == TenantStatus::Suspended);
    AppError::forbidden(if suspended { TENANT_SUSPENDED } else { TENANT_INACTIVE })
}
