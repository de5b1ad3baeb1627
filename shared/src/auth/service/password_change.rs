//! `POST /v1/auth/password`: a signed-in user changes their password. Every
//! other session ends (the user's session epoch moves on); the one the
//! request was made in continues under the new epoch with a new refresh
//! token, returned with a new access token.
//!
//! Round trips: one conditional update (the caller's attempts, limited like
//! untrusted logins before any hashing, so a stolen access token cannot
//! guess the password faster than a login could), two reads (the caller's
//! directory entry for the email, the user item for the hash), one
//! transaction, one KMS Sign.

use super::account::user_of;
use super::*;
use crate::ratelimit::{self, Counter};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

const WRONG_PASSWORD: &str = "the current password is not right";
const NO_SESSION: &str = "sign in again: this access token names no session";

pub async fn change_password(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    request: PasswordChange,
) -> Result<TokenPair, AppError> {
    let caller = user_of(who)?;
    let session_id = who.claims.sid.clone().ok_or(AppError::Unauthorized(NO_SESSION))?;
    check_password_size(&request.current_password).map_err(|_| {
        AppError::bad_request("current_password", "current_password: is required, at most 1024 bytes")
    })?;
    check_new_password(&request.new_password).map_err(|e| renamed(e, "new_password"))?;
    let attempts =
        Counter::per_principal("change_password", caller, app.config.rate_limits.login_ip, app.now());
    ratelimit::consume(app, &attempts).await?;
    let (table, tenant) = (&app.config.table_name, caller.tenant.as_str());
    let dynamodb = &app.clients.dynamodb;
    let member = members::find(dynamodb, table, tenant, &caller.id)
        .await?
        .ok_or(AppError::Unauthorized(NO_SESSION))?;
    let user = users::find_for_member(dynamodb, table, &member)
        .await?
        .filter(|u| u.user_id == caller.id)
        .ok_or(AppError::Unauthorized(NO_SESSION))?;
    let cost = app.config.argon2;
    let (stored, current, new) = (user.password_hash.clone(), request.current_password, request.new_password);
    // The new hash is computed only for the right current password.
    let new_hash = blocking(move || {
        let verdict = password::verify(cost, &current, &stored);
        matches!(verdict, Verdict::Match { .. }).then(|| password::hash(cost, &new))
    })
    .await?;
    let Some(new_hash) = new_hash else {
        tracing::info!(tenant = %tenant, user_id = %caller.id, "password change refused: wrong current password");
        return Err(AppError::forbidden(WRONG_PASSWORD));
    };
    let new_hash = new_hash?;
    commit_change(app, ctx, caller, &user, &member, &session_id, &new_hash).await
}

/// The new password, the new epoch for the user and their entry, the
/// current session kept with a new refresh token, and the signed access token.
async fn commit_change(
    app: &App,
    ctx: &RequestContext,
    caller: &Principal,
    user: &UserRecord,
    member: &MemberRecord,
    session_id: &str,
    new_hash: &str,
) -> Result<TokenPair, AppError> {
    let (table, tenant) = (&app.config.table_name, caller.tenant.as_str());
    let now = app.now();
    let epoch = member.session_epoch.max(user.session_epoch) + 1;
    let after = MemberRecord { session_epoch: epoch, updated_at: Some(rfc3339(now)), ..member.clone() };
    let principal = Principal { roles: vec![member.role], ..caller.clone() };
    let (access_token, expires_in) = issue_session_token(app, &principal, session_id).await?;
    let (refresh_token, token_hash) = refresh_token::generate(&caller.tenant);
    let absolute = now.unix_timestamp() + app.config.session_max_lifetime_seconds;
    let token = RefreshTokenRecord {
        tenant_id: tenant.to_owned(),
        family_id: session_id.to_owned(),
        user_id: caller.id.clone(),
        status: TokenStatus::Active,
        created_at: rfc3339(now),
        expires_at: (now.unix_timestamp() + app.config.refresh_token_ttl_seconds).min(absolute),
        roles: vec![member.role],
        session_epoch: epoch,
        absolute_expires_at: Some(absolute),
    };
    let event = OutboxEvent::new(
        &caller.tenant,
        "user",
        &caller.id,
        "user.password_changed",
        now,
        &ctx.correlation_id,
        json!({ "user_id": caller.id, "session_id": session_id, "other_sessions_revoked": true }),
    )
    .by(&caller.actor());
    Tx::new(table, &event)?
        .push(users::set_password(table, user, new_hash, epoch)?)
        .push(members::change_access(table, member, &after)?)
        .push(sessions::keep_session(table, tenant, session_id, &caller.id, epoch)?)
        .push(sessions::insert_token(table, &token_hash, &token)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| {
            if error.failed(AuthLabel::Session).is_some() {
                AppError::Unauthorized(NO_SESSION)
            } else if error.failed(AuthLabel::User).is_some() || error.failed(AuthLabel::Member).is_some() {
                AppError::Conflict("the account changed meanwhile; retry".into())
            } else {
                error.into_app_error()
            }
        })?;
    tracing::info!(tenant = %tenant, user_id = %caller.id, "password changed; other sessions revoked");
    Ok(TokenPair { access_token, token_type: "Bearer", expires_in, refresh_token, device_token: None })
}

/// A password-policy error about `new_password` rather than `password`.
fn renamed(error: AppError, field: &str) -> AppError {
    match error {
        AppError::BadRequest { detail, .. } => {
            AppError::bad_request(field, detail.replacen("password", field, 1))
        }
        other => other,
    }
}
