//! Invitations: issued by the operator (a new tenant's first owner) or by a
//! tenant's owners and admins (`POST /v1/invitations`), accepted by
//! registering with the token (see [`crate::auth::service::register`]).
//!
//! An invitation is single use, expires (`INVITATION_TTL_SECONDS`, 7 days by
//! default), is bound to one email and gives the role it was issued for. Only
//! an owner can invite an owner.

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::credentials::Email;
use crate::auth::invitation_token;
use crate::auth::principal::{ADMINISTRATORS, Actor, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::ratelimit::{self, Counter};
use crate::store::invitations::{self as store, InvitationRecord};
use crate::store::labels::AuthLabel;
use crate::store::tx::Tx;
use crate::store::{members, tenants};
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

/// `POST /v1/invitations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    pub email: String,
    pub role: String,
}

/// A new invitation. The token is shown once, here, and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedInvitation {
    pub invitation_id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    pub expires_at: String,
    pub token: String,
}

/// A prepared invitation: what to answer, and the item and event to write.
pub(crate) struct Prepared {
    pub issued: IssuedInvitation,
    pub token_hash: String,
    pub record: InvitationRecord,
    pub event: OutboxEvent,
}

/// Builds an invitation of `tenant` for `email` with `role`, by `actor`.
pub(crate) fn prepare(
    app: &App,
    correlation_id: &str,
    tenant: &TenantId,
    email: &Email,
    role: Role,
    actor: &Actor,
    now: OffsetDateTime,
) -> Prepared {
    let (token, token_hash) = invitation_token::generate(tenant);
    let expires_at = now.unix_timestamp() + app.config.invitation_ttl_seconds;
    let expires_text = OffsetDateTime::from_unix_timestamp(expires_at).map(rfc3339).unwrap_or_default();
    let record = InvitationRecord {
        tenant_id: tenant.to_string(),
        invitation_id: crate::ids::new_id(),
        role,
        email_binding: invitation_token::email_binding(&token, email),
        invited_by: actor.clone(),
        created_at: rfc3339(now),
        expires_at,
        used_at: None,
        used_by: None,
    };
    let event = OutboxEvent::new(
        tenant,
        "invitation",
        &record.invitation_id,
        "invitation.created",
        now,
        correlation_id,
        json!({ "invitation_id": record.invitation_id, "role": role, "expires_at": expires_text }),
    )
    .by(actor);
    let issued = IssuedInvitation {
        invitation_id: record.invitation_id.clone(),
        tenant_id: tenant.to_string(),
        email: email.as_str().to_owned(),
        role,
        expires_at: expires_text,
        token,
    };
    Prepared { issued, token_hash, record, event }
}

/// `POST /v1/invitations`: an owner or admin invites someone into their
/// tenant. One transaction: the invitation, the tenant still active, and the
/// caller still holding the role that allows it (their directory entry).
pub async fn invite(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    request: InvitationRequest,
) -> Result<IssuedInvitation, AppError> {
    let caller = &who.principal;
    caller.require_any(&ADMINISTRATORS)?;
    let email = Email::parse(&request.email)?;
    let role = Role::from_field("role", &request.role)?;
    let allowed: &[Role] = if role == Role::Owner { &[Role::Owner] } else { &ADMINISTRATORS };
    if role == Role::Owner && !caller.is_owner() {
        return Err(AppError::forbidden("only an owner can invite an owner"));
    }
    let table = &app.config.table_name;
    let tenant = caller.tenant.as_str();
    let prepared =
        prepare(app, &ctx.correlation_id, &caller.tenant, &email, role, &caller.actor(), app.now());
    let limit = Counter::for_write(app, "invite", caller);
    Tx::new(table, &prepared.event)?
        .push(store::insert(table, &prepared.token_hash, &prepared.record)?)
        .push(tenants::require_active(table, tenant)?)
        .push(members::require_role(table, caller, allowed)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| {
            if let Some(limited) = ratelimit::refused(&error, AuthLabel::RateLimit, &limit, app.now()) {
                limited
            } else if error.failed(AuthLabel::Caller).is_some() {
                AppError::forbidden("your current role does not allow this invitation")
            } else if let Some(failure) = error.failed(AuthLabel::Tenant) {
                crate::auth::service::tenant_refusal(failure)
            } else {
                error.into_app_error()
            }
        })?;
    tracing::info!(
        tenant = %tenant,
        invitation_id = %prepared.issued.invitation_id,
        role = %role,
        "invitation created"
    );
    Ok(prepared.issued)
}
