//! The caller's own sessions: `GET /v1/sessions`, `DELETE /v1/sessions/{id}`
//! and `POST /v1/auth/logout-all`. Access tokens name their session (`sid`),
//! which is how "current" is known; an access token stays valid until it
//! expires (15 minutes), its session's refresh token does not.

use super::*;
use crate::ratelimit::{self, Counter};

/// A session as its user sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub session_id: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Whether the calling access token belongs to this session.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// The most sessions listed (newest first).
const MAX_LISTED: i32 = 100;

/// The signed-in user behind a bearer token (machine clients have no sessions).
pub(super) fn user_of(who: &Authenticated) -> Result<&Principal, AppError> {
    match who.principal.kind {
        PrincipalKind::User => Ok(&who.principal),
        PrincipalKind::Client => Err(AppError::forbidden("machine clients have no sessions")),
    }
}

/// `GET /v1/sessions`: the caller's live sessions. Two reads: the sessions
/// (gsi1) and the caller's directory entry, whose epoch tells which are still
/// valid (a logout-all or a password change moved it on).
pub async fn list_sessions(app: &App, who: &Authenticated) -> Result<SessionList, AppError> {
    let user = user_of(who)?;
    let (table, tenant) = (&app.config.table_name, user.tenant.as_str());
    let dynamodb = &app.clients.dynamodb;
    let (sessions, member) = futures::try_join!(
        sessions::list_for_user(dynamodb, table, tenant, &user.id, MAX_LISTED),
        members::find(dynamodb, table, tenant, &user.id),
    )?;
    let epoch = member.ok_or(AppError::Unauthorized("the access token is invalid or expired"))?.session_epoch;
    let now = app.now().unix_timestamp();
    let current = who.claims.sid.as_deref();
    let live = sessions.into_iter().filter(|s| {
        s.revoked_at.is_none()
            && s.expires_at > now
            && s.absolute_expires_at.is_none_or(|at| at > now)
            && s.session_epoch == epoch
    });
    let sessions = live
        .map(|s| SessionView {
            current: current == Some(s.family_id.as_str()),
            session_id: s.family_id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(SessionList { sessions })
}

/// `DELETE /v1/sessions/{id}`: revokes one of the caller's sessions (204,
/// also when it was revoked already); another user's or an unknown one: 404.
pub async fn revoke_session(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    session_id: &str,
) -> Result<(), AppError> {
    let user = user_of(who)?;
    if !crate::ids::is_valid_id(session_id) {
        return Err(AppError::NotFound("session"));
    }
    let table = &app.config.table_name;
    let now = app.now();
    let limit = Counter::for_write(app, "revoke_session", user);
    let event = OutboxEvent::new(
        &user.tenant,
        "session",
        session_id,
        "session.revoked",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.id, "session_id": session_id, "reason": "user" }),
    )
    .by(&user.actor());
    let result = Tx::new(table, &event)?
        .push(sessions::revoke_own_session(table, user.tenant.as_str(), session_id, &user.id, &rfc3339(now))?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await;
    let Err(error) = result else { return Ok(()) };
    if let Some(limited) = ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
        return Err(limited);
    }
    let Some(failure) = error.failed(AuthLabel::Session) else { return Err(error.into_app_error()) };
    let found = failure.item.clone().map(sessions::decode_session).transpose()?;
    match found {
        Some(session) if session.user_id == user.id => Ok(()),
        _ => Err(AppError::NotFound("session")),
    }
}

/// `POST /v1/auth/logout-all`: ends every session of the caller at once by
/// moving their session epoch on (one read of their entry, one transaction
/// changing it and the user item's copy).
pub async fn logout_all(app: &App, ctx: &RequestContext, who: &Authenticated) -> Result<(), AppError> {
    let user = user_of(who)?;
    let (table, tenant) = (&app.config.table_name, user.tenant.as_str());
    let before = members::find(&app.clients.dynamodb, table, tenant, &user.id)
        .await?
        .ok_or(AppError::Unauthorized("the access token is invalid or expired"))?;
    let now = app.now();
    let after = MemberRecord {
        session_epoch: before.session_epoch + 1,
        updated_at: Some(rfc3339(now)),
        ..before.clone()
    };
    let limit = Counter::for_write(app, "logout_all", user);
    let event = OutboxEvent::new(
        &user.tenant,
        "user",
        &user.id,
        "session.all_revoked",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.id, "reason": "logout_all" }),
    )
    .by(&user.actor());
    Tx::new(table, &event)?
        .push_all(members::access_change(table, &before, &after)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            Some(limited) => limited,
            // A concurrent change moved the epoch on already.
            None if error.failed(AuthLabel::Member).is_some() => {
                AppError::Conflict("the account changed meanwhile; retry".into())
            }
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %tenant, user_id = %user.id, "all sessions revoked");
    Ok(())
}
