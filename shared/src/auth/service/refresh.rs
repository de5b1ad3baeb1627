//! Refresh-token rotation with reuse detection, and logout.

use super::*;
use crate::ratelimit::{self, Counter};
use crate::store::tx::TxError;

/// Rotates a refresh token: one read (the token), the new access token
/// signed, then one transaction (spend, extend the session, the new token,
/// the tenant active, the user's epoch unchanged, the per-source hit). The
/// token is signed before the commit, so a signing failure spends nothing and
/// the client's retry is not mistaken for reuse.
pub async fn refresh(
    app: &App,
    ctx: &RequestContext,
    request: RefreshRequest,
) -> Result<TokenPair, AppError> {
    if request.refresh_token.chars().count() > MAX_REFRESH_TOKEN_CHARS {
        return Err(AppError::bad_request("refresh_token", "refresh_token: is too long"));
    }
    let now = app.now();
    let limit = Counter::per_source("refresh", &ctx.source_ip, app.config.rate_limits.refresh_ip, now);
    let Some((tenant, token_hash, token)) = presented(app, &request.refresh_token, now).await? else {
        // Unknown or expired tokens never reach a transaction: counted on their own.
        ratelimit::consume(app, &limit).await?;
        return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
    };
    if token.status == TokenStatus::Spent {
        revoke_family(app, ctx, &tenant, &token, "refresh_token_reuse").await?;
        return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
    }
    let table = &app.config.table_name;
    let record = next_token(app, &token, now);
    if record.expires_at <= now.unix_timestamp() {
        tracing::info!(tenant = %tenant, session_id = %token.family_id, "refresh refused: the session reached its absolute expiry");
        return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
    }
    let principal = Principal {
        kind: PrincipalKind::User,
        id: token.user_id.clone(),
        tenant: tenant.clone(),
        roles: token.roles.clone(),
    };
    let (access_token, expires_in) = issue_session_token(app, &principal, &token.family_id).await?;
    let (new_token, new_hash) = refresh_token::generate(&tenant);
    let event = OutboxEvent::new(
        &tenant,
        "session",
        &token.family_id,
        "session.refreshed",
        now,
        &ctx.correlation_id,
        json!({ "user_id": token.user_id, "session_id": token.family_id }),
    )
    .by(&Actor::user(&token.user_id));
    // The tenant is active, and the user is active with the epoch the family
    // was issued under (a role or status change bumped it): two conditions
    // in the rotation's own transaction.
    let committed = Tx::new(table, &event)?
        .push(sessions::spend_token(table, tenant.as_str(), &token_hash)?)
        .push(sessions::touch_session(
            table,
            tenant.as_str(),
            &token.family_id,
            &record,
            now.unix_timestamp(),
            &rfc3339(now),
        )?)
        .push(sessions::insert_token(table, &new_hash, &record)?)
        .push(tenants::require_active(table, tenant.as_str())?)
        .push(members::require_session_epoch(table, tenant.as_str(), &token.user_id, token.session_epoch)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await;
    if let Err(error) = committed {
        if let Some(limited) = ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            return Err(limited);
        }
        return Err(rotation_refused(app, ctx, &tenant, &token, error).await);
    }
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: new_token,
        device_token: None,
    })
}

/// The stored, unexpired token a presented refresh token is, with its tenant and hash.
async fn presented(
    app: &App,
    presented: &str,
    now: time::OffsetDateTime,
) -> Result<Option<(TenantId, String, RefreshTokenRecord)>, AppError> {
    let Some((tenant, token_hash)) = refresh_token::parse(presented) else { return Ok(None) };
    let token =
        sessions::find_token(&app.clients.dynamodb, &app.config.table_name, tenant.as_str(), &token_hash)
            .await?
            .filter(|t| t.expires_at > now.unix_timestamp());
    Ok(token.map(|token| (tenant, token_hash, token)))
}

/// The family's next token: idle expiry from now, never past the family's
/// absolute expiry (a family from before absolute expiries gets one now).
/// The family's roles and epoch travel with each of its tokens, so the token
/// read is the only read.
fn next_token(app: &App, token: &RefreshTokenRecord, now: time::OffsetDateTime) -> RefreshTokenRecord {
    let now_s = now.unix_timestamp();
    let absolute = token.absolute_expires_at.unwrap_or(now_s + app.config.session_max_lifetime_seconds);
    RefreshTokenRecord {
        status: TokenStatus::Active,
        created_at: rfc3339(now),
        expires_at: (now_s + app.config.refresh_token_ttl_seconds).min(absolute),
        absolute_expires_at: Some(absolute),
        ..token.clone()
    }
}

/// The answer to a rotation whose transaction was cancelled, by the action
/// that failed.
async fn rotation_refused(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    token: &RefreshTokenRecord,
    error: TxError<AuthLabel>,
) -> AppError {
    if let Some(failure) = error.failed(AuthLabel::Tenant) {
        tracing::info!(tenant = %tenant, session_id = %token.family_id, "refresh refused: tenant not active");
        return tenant_refusal(failure);
    }
    if error.failed(AuthLabel::Member).is_some() {
        tracing::info!(
            tenant = %tenant,
            session_id = %token.family_id,
            "refresh refused: the user's access changed since the session began"
        );
        return AppError::Unauthorized(INVALID_REFRESH_TOKEN);
    }
    if error.failed(AuthLabel::Token).is_some() {
        // Spent by a concurrent request between our read and write: reuse.
        if let Err(revoke) = revoke_family(app, ctx, tenant, token, "refresh_token_reuse").await {
            return revoke;
        }
        return AppError::Unauthorized(INVALID_REFRESH_TOKEN);
    }
    if error.failed(AuthLabel::Session).is_some() {
        return AppError::Unauthorized(INVALID_REFRESH_TOKEN);
    }
    error.into_app_error()
}

/// Revokes the token family (session). Presenting a spent token does this
/// (RFC 9700 §4.14.2), as does logout. Already revoked is not an error.
async fn revoke_family(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    token: &RefreshTokenRecord,
    reason: &str,
) -> Result<(), AppError> {
    let table = &app.config.table_name;
    let now = app.now();
    let event = OutboxEvent::new(
        tenant,
        "session",
        &token.family_id,
        "session.revoked",
        now,
        &ctx.correlation_id,
        json!({ "user_id": token.user_id, "session_id": token.family_id, "reason": reason }),
    )
    .by(&Actor::user(&token.user_id));
    let result = Tx::new(table, &event)?
        .push(sessions::revoke_session(table, tenant.as_str(), &token.family_id, &rfc3339(now))?)
        .commit(&app.clients.dynamodb)
        .await;
    match result {
        Ok(()) => {
            tracing::warn!(tenant = %tenant, session_id = %token.family_id, reason, "session revoked");
            Ok(())
        }
        Err(error) if error.failed(AuthLabel::Session).is_some() => Ok(()),
        Err(error) => Err(error.into_app_error()),
    }
}

pub async fn logout(app: &App, ctx: &RequestContext, request: RefreshRequest) -> Result<(), AppError> {
    if request.refresh_token.chars().count() > MAX_REFRESH_TOKEN_CHARS {
        return Err(AppError::bad_request("refresh_token", "refresh_token: is too long"));
    }
    // Like token revocation (RFC 7009): an unknown token needs no action.
    let Some((tenant, token_hash)) = refresh_token::parse(&request.refresh_token) else { return Ok(()) };
    let table = &app.config.table_name;
    match sessions::find_token(&app.clients.dynamodb, table, tenant.as_str(), &token_hash).await? {
        Some(token) => revoke_family(app, ctx, &tenant, &token, "logout").await,
        None => Ok(()),
    }
}
