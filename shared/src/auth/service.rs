//! The auth services behind register, login, refresh, logout and jwks, and
//! the bearer-token check every authenticated function uses.

use super::credentials::{Email, check_new_password, check_password_size};
use super::jwt::{self, AccessClaims, Expected, TokenKey};
use super::lockout::{Attempts, FailureOutcome};
use super::password::{self, Verdict};
use super::refresh_token;
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::store::labels::AuthLabel;
use crate::store::sessions::{self, RefreshTokenRecord, SessionRecord, TokenStatus};
use crate::store::tx::Tx;
use crate::store::users::{self, UserRecord};
use crate::tenant::TenantId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

const INVALID_CREDENTIALS: &str = "invalid email or password";
const INVALID_REFRESH_TOKEN: &str = "invalid refresh token";
const MAX_REFRESH_TOKEN_BYTES: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub tenant_id: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct RegisteredUser {
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
}

/// A verified bearer: the tenant every data access of the request is scoped to.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: TenantId,
    pub user_id: String,
    pub claims: AccessClaims,
}

fn tenant_of(raw: &str) -> Result<TenantId, AppError> {
    TenantId::parse(raw).map_err(|e| AppError::bad_request("tenant_id", format!("tenant_id: {e}")))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::internal("blocking task", e))
}

pub async fn register(
    app: &App,
    ctx: &RequestContext,
    request: Credentials,
) -> Result<RegisteredUser, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_new_password(&request.password)?;
    let cost = app.config.argon2;
    let password = request.password;
    let password_hash = blocking(move || password::hash(cost, &password)).await??;
    let now = app.now();
    let user = UserRecord {
        tenant_id: tenant.to_string(),
        user_id: crate::ids::new_id(),
        email: email.as_str().to_owned(),
        password_hash,
        created_at: rfc3339(now),
        created_at_ms: Some(now.unix_timestamp() * 1000),
        last_login_at: None,
        failed_logins: 0,
        failed_window_started_at: None,
        locked_until: None,
    };
    let event = OutboxEvent::new(
        &tenant,
        "user",
        &user.user_id,
        "user.registered",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.user_id, "email": user.email }),
    );
    let table = &app.config.table_name;
    Tx::new(table, &event)?.push(users::insert(table, &user)?).commit(&app.clients.dynamodb).await.map_err(
        |error| match error.failed(AuthLabel::User) {
            Some(_) => AppError::Conflict("a user with this email already exists in this tenant".into()),
            None => error.into_app_error(),
        },
    )?;
    tracing::info!(user_id = %user.user_id, tenant = %tenant, "user registered");
    Ok(RegisteredUser {
        user_id: user.user_id,
        tenant_id: user.tenant_id,
        email: user.email,
        created_at: user.created_at,
    })
}

pub async fn login(app: &App, ctx: &RequestContext, request: Credentials) -> Result<TokenPair, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_password_size(&request.password)?;
    let (user, verdict, password) = verify_password(app, &tenant, &email, request.password).await?;
    let Some(user) = user else {
        tracing::info!(tenant = %tenant, "login refused");
        return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
    };
    let now = app.now();
    if attempts_of(&user).is_locked(now.unix_timestamp()) {
        tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: account locked");
        return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
    }
    let rehash = match verdict {
        Verdict::Mismatch => {
            record_failure(app, ctx, &tenant, user).await?;
            return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
        }
        Verdict::Match { rehash } => rehash,
    };
    let cost = app.config.argon2;
    let new_hash =
        if rehash { Some(blocking(move || password::hash(cost, &password)).await??) } else { None };
    let refresh_token = open_session(app, ctx, &tenant, &user, now, new_hash.as_deref()).await?;
    let (access_token, expires_in) = issue_access_token(app, &tenant, &user.user_id).await?;
    tracing::info!(tenant = %tenant, user_id = %user.user_id, rehashed = new_hash.is_some(), "login succeeded");
    Ok(TokenPair { access_token, token_type: "Bearer", expires_in, refresh_token })
}

/// Finds the user and verifies the password; gives the password back for a
/// rehash. Unknown users are verified against a dummy hash of the same cost,
/// and locked accounts are verified too: every refusal costs the same.
async fn verify_password(
    app: &App,
    tenant: &TenantId,
    email: &Email,
    password: String,
) -> Result<(Option<UserRecord>, Verdict, String), AppError> {
    let cost = app.config.argon2;
    let user =
        users::find_by_email(&app.clients.dynamodb, &app.config.table_name, tenant.as_str(), email.as_str())
            .await?;
    let stored = user.as_ref().map_or_else(|| password::dummy_hash(cost), |u| u.password_hash.clone());
    let (verdict, password) =
        blocking(move || (password::verify(cost, &password, &stored), password)).await?;
    Ok((user, verdict, password))
}

fn attempts_of(user: &UserRecord) -> Attempts {
    Attempts {
        failed: user.failed_logins,
        window_started_at: user.failed_window_started_at,
        locked_until: user.locked_until,
    }
}

/// Records the successful login (with the new hash, if any) and opens a
/// session with its first refresh token, which is returned.
async fn open_session(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    user: &UserRecord,
    now: time::OffsetDateTime,
    new_hash: Option<&str>,
) -> Result<String, AppError> {
    let table = &app.config.table_name;
    let family_id = crate::ids::new_id();
    let (refresh_token, token_hash) = refresh_token::generate(tenant);
    let expires_at = now.unix_timestamp() + app.config.refresh_token_ttl_seconds;
    let at = rfc3339(now);
    let session = SessionRecord {
        tenant_id: tenant.to_string(),
        family_id: family_id.clone(),
        user_id: user.user_id.clone(),
        created_at: at.clone(),
        expires_at,
        revoked_at: None,
    };
    let token = RefreshTokenRecord {
        tenant_id: tenant.to_string(),
        family_id: family_id.clone(),
        user_id: user.user_id.clone(),
        status: TokenStatus::Active,
        created_at: at.clone(),
        expires_at,
    };
    let event = OutboxEvent::new(
        tenant,
        "user",
        &user.user_id,
        "user.login_succeeded",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.user_id, "session_id": family_id, "password_rehashed": new_hash.is_some() }),
    );
    Tx::new(table, &event)?
        .push(users::record_login(table, user, &at, new_hash)?)
        .push(sessions::insert_session(table, &session)?)
        .push(sessions::insert_token(table, &token_hash, &token)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match error.failed(AuthLabel::User) {
            // The password changed between our read and our write.
            Some(_) => AppError::Unauthorized(INVALID_CREDENTIALS),
            None => error.into_app_error(),
        })?;
    Ok(refresh_token)
}

/// Counts a failed login (and locks the account at the threshold). Concurrent
/// failures race on a condition over the counter; the loser recomputes from
/// the item the cancellation returned, so every failure is counted.
async fn record_failure(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    mut user: UserRecord,
) -> Result<(), AppError> {
    let table = &app.config.table_name;
    let policy = app.config.lockout;
    for _ in 0..5 {
        let now = app.now();
        let FailureOutcome::Counted { next, locked } =
            attempts_of(&user).after_failure(&policy, now.unix_timestamp())
        else {
            return Ok(());
        };
        let failed = OutboxEvent::new(
            tenant,
            "user",
            &user.user_id,
            "user.login_failed",
            now,
            &ctx.correlation_id,
            json!({ "user_id": user.user_id, "failed_attempts": if locked { policy.threshold } else { next.failed } }),
        );
        let mut tx = Tx::new(table, &failed)?;
        if locked {
            let until = next.locked_until.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
            tx = tx.event(&OutboxEvent::new(
                tenant,
                "user",
                &user.user_id,
                "user.account_locked",
                now,
                &ctx.correlation_id,
                json!({ "user_id": user.user_id, "locked_until": until.map(rfc3339) }),
            ))?;
        }
        let action =
            users::record_failure(table, &user, next.failed, next.window_started_at, next.locked_until)?;
        match tx.push(action).commit(&app.clients.dynamodb).await {
            Ok(()) => {
                if locked {
                    tracing::warn!(tenant = %tenant, user_id = %user.user_id, "account locked after repeated failures");
                }
                return Ok(());
            }
            Err(error) => match error.failed(AuthLabel::User).and_then(|f| f.item.clone()) {
                Some(current) => {
                    user = crate::store::users::decode_item(current)?;
                }
                None => return Err(error.into_app_error()),
            },
        }
    }
    Err(AppError::Unavailable("too many concurrent login attempts".into()))
}

pub async fn refresh(
    app: &App,
    ctx: &RequestContext,
    request: RefreshRequest,
) -> Result<TokenPair, AppError> {
    if request.refresh_token.len() > MAX_REFRESH_TOKEN_BYTES {
        return Err(AppError::bad_request("refresh_token", "refresh_token: is too long"));
    }
    let (tenant, token_hash) =
        refresh_token::parse(&request.refresh_token).ok_or(AppError::Unauthorized(INVALID_REFRESH_TOKEN))?;
    let table = &app.config.table_name;
    let now = app.now();
    let token = sessions::find_token(&app.clients.dynamodb, table, tenant.as_str(), &token_hash)
        .await?
        .filter(|t| t.expires_at > now.unix_timestamp())
        .ok_or(AppError::Unauthorized(INVALID_REFRESH_TOKEN))?;
    if token.status == TokenStatus::Spent {
        revoke_family(app, ctx, &tenant, &token, "refresh_token_reuse").await?;
        return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
    }
    let (new_token, new_hash) = refresh_token::generate(&tenant);
    let expires_at = now.unix_timestamp() + app.config.refresh_token_ttl_seconds;
    let record = RefreshTokenRecord {
        tenant_id: tenant.to_string(),
        family_id: token.family_id.clone(),
        user_id: token.user_id.clone(),
        status: TokenStatus::Active,
        created_at: rfc3339(now),
        expires_at,
    };
    let event = OutboxEvent::new(
        &tenant,
        "session",
        &token.family_id,
        "session.refreshed",
        now,
        &ctx.correlation_id,
        json!({ "user_id": token.user_id, "session_id": token.family_id }),
    );
    let committed = Tx::new(table, &event)?
        .push(sessions::spend_token(table, tenant.as_str(), &token_hash)?)
        .push(sessions::touch_session(table, tenant.as_str(), &token.family_id, expires_at)?)
        .push(sessions::insert_token(table, &new_hash, &record)?)
        .commit(&app.clients.dynamodb)
        .await;
    if let Err(error) = committed {
        if error.failed(AuthLabel::Token).is_some() {
            // Spent by a concurrent request between our read and write: reuse.
            revoke_family(app, ctx, &tenant, &token, "refresh_token_reuse").await?;
            return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
        }
        if error.failed(AuthLabel::Session).is_some() {
            return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
        }
        return Err(error.into_app_error());
    }
    let (access_token, expires_in) = issue_access_token(app, &tenant, &token.user_id).await?;
    Ok(TokenPair { access_token, token_type: "Bearer", expires_in, refresh_token: new_token })
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
    );
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
    if request.refresh_token.len() > MAX_REFRESH_TOKEN_BYTES {
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

/// Signs an access token with the KMS key; returns it and its lifetime.
pub async fn issue_access_token(
    app: &App,
    tenant: &TenantId,
    user_id: &str,
) -> Result<(String, i64), AppError> {
    let key_id = app.config.token_signing_key_id()?;
    let iat = app.now().unix_timestamp();
    let ttl = app.config.access_token_ttl_seconds;
    let claims = AccessClaims {
        iss: app.config.token_issuer.clone(),
        aud: app.config.token_audience.clone(),
        sub: user_id.to_owned(),
        tenant: tenant.to_string(),
        iat,
        exp: iat + ttl,
        jti: crate::ids::new_id(),
    };
    let input = jwt::signing_input(key_id, &claims);
    // RAW: KMS hashes the message itself (SHA-256), as ES256 requires.
    let signed = app
        .clients
        .kms
        .sign()
        .key_id(key_id)
        .message(Blob::new(input.as_bytes()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("sign access token", e))?;
    let der = signed.signature().ok_or_else(|| AppError::Internal("KMS returned no signature".into()))?;
    let token = jwt::assemble(&input, der.as_ref()).map_err(|e| AppError::internal("assemble token", e))?;
    Ok((token, ttl))
}

/// The verification key, fetched from KMS once per container.
pub async fn token_key(app: &App) -> Result<&TokenKey, AppError> {
    app.token_key
        .get_or_try_init(|| async {
            let key_id = app.config.token_signing_key_id()?;
            let output = app
                .clients
                .kms
                .get_public_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| AppError::from_sdk("get token public key", e))?;
            let der =
                output.public_key().ok_or_else(|| AppError::Internal("KMS returned no public key".into()))?;
            TokenKey::from_spki_der(key_id, der.as_ref())
                .map_err(|e| AppError::internal("token public key", e))
        })
        .await
}

/// The JWKS document with the token verification key.
pub async fn jwks(app: &App) -> Result<serde_json::Value, AppError> {
    Ok(json!({ "keys": [token_key(app).await?.jwk] }))
}

/// Verifies `Authorization: Bearer <access token>`.
pub async fn authenticate(app: &App, request: &lambda_http::Request) -> Result<Authenticated, AppError> {
    let header = crate::http::header_text(request, "authorization")
        .ok_or(AppError::Unauthorized("a bearer access token is required"))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(AppError::Unauthorized("a bearer access token is required"))?;
    let key = token_key(app).await?;
    let expected = Expected {
        issuer: &app.config.token_issuer,
        audience: &app.config.token_audience,
        now: app.now().unix_timestamp(),
    };
    let claims = jwt::verify(token, key, &expected).map_err(|reason| {
        tracing::info!(%reason, "access token refused");
        AppError::Unauthorized("the access token is invalid or expired")
    })?;
    let tenant = TenantId::parse(&claims.tenant)
        .map_err(|_| AppError::Unauthorized("the access token is invalid or expired"))?;
    Ok(Authenticated { tenant, user_id: claims.sub.clone(), claims })
}
