//! Password login: device trust, the limits on untrusted clients, the
//! rehash, the first session.
//!
//! An attempt presenting a live device token of the account (OWASP device
//! cookies) is trusted: it is not subject to the account's lockout of
//! untrusted clients nor to the per-source limit, only to its device's own
//! failure count ([`super::failures`]). Every other attempt is untrusted:
//! limited per source IP (one conditional update before any hashing) and
//! refused while the account's untrusted clients are locked out. So an
//! attacker without the victim's device can lock out other untrusted
//! clients, never the victim's own devices.

use super::failures::record_failure;
use super::*;
use crate::auth::device_token;
use crate::ratelimit::{self, Counter};
use crate::store::devices::{DeviceChange, DeviceRecord};

/// What a successful password check opens.
pub(super) struct SignIn<'a> {
    pub tenant: &'a TenantId,
    pub user: &'a UserRecord,
    /// The trusted device the attempt came from (its token hash).
    pub device: Option<&'a str>,
    pub new_hash: Option<&'a str>,
}

pub async fn login(app: &App, ctx: &RequestContext, request: Credentials) -> Result<TokenPair, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_password_size(&request.password)?;
    let table = &app.config.table_name;
    let user = users::find_by_email(&app.clients.dynamodb, table, tenant.as_str(), email.as_str()).await?;
    let now = app.now();
    let device = user
        .as_ref()
        .and_then(|u| device_token::trusted(u, request.device_token.as_deref(), now.unix_timestamp()));
    if device.is_none() {
        let limit = app.config.rate_limits.login_ip;
        ratelimit::consume(app, &Counter::per_source("login", &ctx.source_ip, limit, now)).await?;
    }
    let (verdict, password) = verify_password(app, user.as_ref(), request.password).await?;
    let Some(user) = user else {
        tracing::info!(tenant = %tenant, "login refused");
        return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
    };
    if device.is_none() && attempts_of(&user).is_locked(now.unix_timestamp()) {
        tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: untrusted clients locked out");
        return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
    }
    let rehash = match verdict {
        Verdict::Mismatch => {
            record_failure(app, ctx, &tenant, user, device.as_deref()).await?;
            return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
        }
        Verdict::Match { rehash } => rehash,
    };
    // Only someone who knows the password learns that the account is disabled.
    if user.status == UserStatus::Disabled {
        tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: user disabled");
        return Err(AppError::forbidden(USER_DISABLED));
    }
    let cost = app.config.argon2;
    let new_hash =
        if rehash { Some(blocking(move || password::hash(cost, &password)).await??) } else { None };
    let sign_in =
        SignIn { tenant: &tenant, user: &user, device: device.as_deref(), new_hash: new_hash.as_deref() };
    let tokens = open_session(app, ctx, &sign_in).await?;
    tracing::info!(
        tenant = %tenant,
        user_id = %user.user_id,
        trusted_device = device.is_some(),
        rehashed = new_hash.is_some(),
        "login succeeded"
    );
    Ok(tokens)
}

/// Verifies the password against the user's hash; gives the password back
/// for a rehash. Unknown users are verified against a dummy hash of the same
/// cost, and locked accounts are verified too: every refusal costs the same.
async fn verify_password(
    app: &App,
    user: Option<&UserRecord>,
    password: String,
) -> Result<(Verdict, String), AppError> {
    let cost = app.config.argon2;
    let stored = user.map_or_else(|| password::dummy_hash(cost), |u| u.password_hash.clone());
    blocking(move || (password::verify(cost, &password, &stored), password)).await
}

pub(super) fn attempts_of(user: &UserRecord) -> Attempts {
    Attempts {
        failed: user.failed_logins,
        window_started_at: user.failed_window_started_at,
        locked_until: user.locked_until,
    }
}

/// Records the successful sign-in (new device token, new hash if any) and
/// opens a session with its first refresh token. The access token is signed
/// first: a signing failure leaves nothing behind.
pub(super) async fn open_session(
    app: &App,
    ctx: &RequestContext,
    sign_in: &SignIn<'_>,
) -> Result<TokenPair, AppError> {
    let (tenant, user) = (sign_in.tenant, sign_in.user);
    let table = &app.config.table_name;
    let now = app.now();
    let family_id = crate::ids::new_id();
    let principal = Principal {
        kind: PrincipalKind::User,
        id: user.user_id.clone(),
        tenant: tenant.clone(),
        roles: vec![user.role],
    };
    let (access_token, expires_in) = issue_session_token(app, &principal, &family_id).await?;
    let (refresh_token, token_hash) = refresh_token::generate(tenant);
    let (device_token, device_hash) = device_token::generate(tenant);
    let (session, token) = new_session(app, ctx, user, &family_id, now);
    let at = rfc3339(now);
    let device = DeviceChange {
        add: (
            device_hash,
            DeviceRecord {
                created_at: now.unix_timestamp(),
                last_used_at: now.unix_timestamp(),
                failures: 0,
            },
        ),
        drop: device_token::dropped_on_login(user, sign_in.device, now.unix_timestamp()),
    };
    let event = OutboxEvent::new(
        tenant,
        "user",
        &user.user_id,
        "user.login_succeeded",
        now,
        &ctx.correlation_id,
        json!({
            "user_id": user.user_id,
            "session_id": family_id,
            "password_rehashed": sign_in.new_hash.is_some(),
            "trusted_device": sign_in.device.is_some(),
        }),
    )
    .by(&Actor::user(&user.user_id));
    // The tenant's status rides in the same transaction: no extra round trip.
    Tx::new(table, &event)?
        .push(users::record_login(table, user, &at, sign_in.new_hash, &device)?)
        .push(sessions::insert_session(table, &session)?)
        .push(sessions::insert_token(table, &token_hash, &token)?)
        .push(tenants::require_active(table, tenant.as_str())?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| {
            if let Some(failure) = error.failed(AuthLabel::Tenant) {
                tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: tenant not active");
                return tenant_refusal(failure);
            }
            match error.failed(AuthLabel::User) {
                // The password, role or status changed between our read and our write.
                Some(_) => AppError::Unauthorized(INVALID_CREDENTIALS),
                None => error.into_app_error(),
            }
        })?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token,
        device_token: Some(device_token),
    })
}

/// A new session (token family) of `user` and its first refresh token.
fn new_session(
    app: &App,
    ctx: &RequestContext,
    user: &UserRecord,
    family_id: &str,
    now: time::OffsetDateTime,
) -> (SessionRecord, RefreshTokenRecord) {
    let absolute = now.unix_timestamp() + app.config.session_max_lifetime_seconds;
    let expires_at = (now.unix_timestamp() + app.config.refresh_token_ttl_seconds).min(absolute);
    let at = rfc3339(now);
    let session = SessionRecord {
        tenant_id: user.tenant_id.clone(),
        family_id: family_id.to_owned(),
        user_id: user.user_id.clone(),
        created_at: at.clone(),
        expires_at,
        revoked_at: None,
        roles: vec![user.role],
        session_epoch: user.session_epoch,
        absolute_expires_at: Some(absolute),
        last_used_at: Some(at.clone()),
        user_agent: ctx.user_agent.as_deref().map(shortened),
    };
    let token = RefreshTokenRecord {
        tenant_id: user.tenant_id.clone(),
        family_id: family_id.to_owned(),
        user_id: user.user_id.clone(),
        status: TokenStatus::Active,
        created_at: at,
        expires_at,
        roles: vec![user.role],
        session_epoch: user.session_epoch,
        absolute_expires_at: Some(absolute),
    };
    (session, token)
}

/// A user agent as stored: printable, at most 200 characters.
fn shortened(agent: &str) -> String {
    agent.chars().filter(|c| !c.is_control()).take(200).collect()
}
