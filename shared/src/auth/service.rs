//! The auth services behind register, login, refresh, logout and jwks, and
//! the bearer-token check every authenticated function uses.
//!
//! Round trips: open registration one transaction, registration with an
//! invitation one GetItem (the invitation, for its role) and one transaction;
//! login one GetItem, one transaction, one KMS Sign; refresh the same. The
//! tenant's status, the invitation's validity and the user's session epoch
//! are conditions inside those transactions, never reads of their own.

use super::credentials::{Email, check_new_password, check_password_size};
use super::jwt::{self, AccessClaims, Expected, TokenKey};
use super::lockout::{Attempts, FailureOutcome};
use super::password::{self, Verdict};
use super::principal::{Actor, Principal, PrincipalKind, Role};
use super::{invitation_token, refresh_token};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::store::invitations::{self, InvitationRecord};
use crate::store::labels::AuthLabel;
use crate::store::members::{self, MemberRecord};
use crate::store::sessions::{self, RefreshTokenRecord, SessionRecord, TokenStatus};
use crate::store::tenants::{self, TenantStatus};
use crate::store::tx::{Failure, Tx};
use crate::store::users::{self, UserRecord, UserStatus};
use crate::tenant::TenantId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

const INVALID_CREDENTIALS: &str = "invalid email or password";
/// The one answer for every registration the tenant does not admit.
pub const REGISTRATION_REFUSED: &str =
    "registration needs a valid invitation for this email, or a tenant open to signup";
const TENANT_SUSPENDED: &str = "the tenant is suspended";
const TENANT_INACTIVE: &str = "the tenant is not active";
const USER_DISABLED: &str = "the user is disabled";
const INVALID_REFRESH_TOKEN: &str = "invalid refresh token";
const MAX_REFRESH_TOKEN_BYTES: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub tenant_id: String,
    pub email: String,
    pub password: String,
}

/// `POST /v1/users`: the credentials, and the invitation when the tenant
/// is invite-only (or to join with the invitation's role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub tenant_id: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub invitation: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegisteredUser {
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
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

/// A verified bearer: the tenant every data access of the request is scoped
/// to, and the principal with its roles. `tenant` and `user_id` are the
/// principal's tenant and id, kept for the callers that predate it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: TenantId,
    pub user_id: String,
    pub claims: AccessClaims,
    pub principal: Principal,
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
    request: Registration,
) -> Result<RegisteredUser, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_new_password(&request.password)?;
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
        role,
        status: UserStatus::Active,
        session_epoch: 0,
    };
    let member = MemberRecord {
        tenant_id: user.tenant_id.clone(),
        user_id: user.user_id.clone(),
        email: user.email.clone(),
        role,
        status: UserStatus::Active,
        session_epoch: 0,
        created_at: user.created_at.clone(),
        updated_at: None,
    };
    let actor = Actor::user(&user.user_id);
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
    .by(&actor);
    let mut tx =
        Tx::new(table, &event)?.push(users::insert(table, &user)?).push(members::insert(table, &member)?);
    tx = match &invitation {
        // Open signup: the tenant exists, is active and open, all in one condition.
        None => tx.push(tenants::require_open_signup(table, tenant.as_str())?),
        Some(invitation) => {
            let accepted = OutboxEvent::new(
                &tenant,
                "invitation",
                &invitation.record.invitation_id,
                "invitation.accepted",
                now,
                &ctx.correlation_id,
                json!({ "invitation_id": invitation.record.invitation_id, "user_id": user.user_id, "role": role }),
            )
            .by(&actor);
            let tenant_check = if role == Role::Owner {
                tenants::change_owner_count(table, tenant.as_str(), 1)?
            } else {
                tenants::require_active(table, tenant.as_str())?
            };
            tx.event(&accepted)?.push(tenant_check).push(invitations::consume(
                table,
                tenant.as_str(),
                &invitation.token_hash,
                &invitation.email_binding,
                &user.user_id,
                now.unix_timestamp(),
                &user.created_at,
            )?)
        }
    };
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        if error.failed(AuthLabel::Tenant).is_some() || error.failed(AuthLabel::Invitation).is_some() {
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
        email: user.email,
        role,
        created_at: user.created_at,
    })
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
    // Only someone who knows the password learns that the account is disabled.
    if user.status == UserStatus::Disabled {
        tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: user disabled");
        return Err(AppError::forbidden(USER_DISABLED));
    }
    let cost = app.config.argon2;
    let new_hash =
        if rehash { Some(blocking(move || password::hash(cost, &password)).await??) } else { None };
    let refresh_token = open_session(app, ctx, &tenant, &user, now, new_hash.as_deref()).await?;
    let principal = Principal {
        kind: PrincipalKind::User,
        id: user.user_id.clone(),
        tenant: tenant.clone(),
        roles: vec![user.role],
    };
    let (access_token, expires_in) = issue_access_token(app, &principal).await?;
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
        roles: vec![user.role],
        session_epoch: user.session_epoch,
    };
    let token = RefreshTokenRecord {
        tenant_id: tenant.to_string(),
        family_id: family_id.clone(),
        user_id: user.user_id.clone(),
        status: TokenStatus::Active,
        created_at: at.clone(),
        expires_at,
        roles: vec![user.role],
        session_epoch: user.session_epoch,
    };
    let event = OutboxEvent::new(
        tenant,
        "user",
        &user.user_id,
        "user.login_succeeded",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user.user_id, "session_id": family_id, "password_rehashed": new_hash.is_some() }),
    )
    .by(&Actor::user(&user.user_id));
    // The tenant's status rides in the same transaction: no extra round trip.
    Tx::new(table, &event)?
        .push(users::record_login(table, user, &at, new_hash)?)
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
        )
        .by(&Actor::user(&user.user_id));
        let mut tx = Tx::new(table, &failed)?;
        if locked {
            let until = next.locked_until.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
            tx = tx.event(
                &OutboxEvent::new(
                    tenant,
                    "user",
                    &user.user_id,
                    "user.account_locked",
                    now,
                    &ctx.correlation_id,
                    json!({ "user_id": user.user_id, "locked_until": until.map(rfc3339) }),
                )
                .by(&Actor::user(&user.user_id)),
            )?;
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
    // The family's roles and epoch travel with each of its tokens, so the
    // token read above is the only read.
    let record = RefreshTokenRecord {
        tenant_id: tenant.to_string(),
        family_id: token.family_id.clone(),
        user_id: token.user_id.clone(),
        status: TokenStatus::Active,
        created_at: rfc3339(now),
        expires_at,
        roles: token.roles.clone(),
        session_epoch: token.session_epoch,
    };
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
        .push(sessions::touch_session(table, tenant.as_str(), &token.family_id, expires_at)?)
        .push(sessions::insert_token(table, &new_hash, &record)?)
        .push(tenants::require_active(table, tenant.as_str())?)
        .push(members::require_session_epoch(table, tenant.as_str(), &token.user_id, token.session_epoch)?)
        .commit(&app.clients.dynamodb)
        .await;
    if let Err(error) = committed {
        if let Some(failure) = error.failed(AuthLabel::Tenant) {
            tracing::info!(tenant = %tenant, session_id = %token.family_id, "refresh refused: tenant not active");
            return Err(tenant_refusal(failure));
        }
        if error.failed(AuthLabel::Member).is_some() {
            tracing::info!(
                tenant = %tenant,
                session_id = %token.family_id,
                "refresh refused: the user's access changed since the session began"
            );
            return Err(AppError::Unauthorized(INVALID_REFRESH_TOKEN));
        }
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
    let principal = Principal {
        kind: PrincipalKind::User,
        id: token.user_id.clone(),
        tenant: tenant.clone(),
        roles: token.roles.clone(),
    };
    let (access_token, expires_in) = issue_access_token(app, &principal).await?;
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

/// Signs an access token for `principal` with the KMS key; returns it and
/// its lifetime. Machine clients get `client_id` = `sub` (RFC 9068).
pub async fn issue_access_token(app: &App, principal: &Principal) -> Result<(String, i64), AppError> {
    let key_id = app.config.token_signing_key_id()?;
    let iat = app.now().unix_timestamp();
    let ttl = app.config.access_token_ttl_seconds;
    let claims = AccessClaims {
        iss: app.config.token_issuer.clone(),
        aud: app.config.token_audience.clone(),
        sub: principal.id.clone(),
        tenant: principal.tenant.to_string(),
        iat,
        exp: iat + ttl,
        jti: crate::ids::new_id(),
        roles: principal.role_names().into_iter().map(str::to_owned).collect(),
        client_id: (principal.kind == PrincipalKind::Client).then(|| principal.id.clone()),
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
    let principal =
        Principal::from_claims(&claims.sub, tenant.clone(), &claims.roles, claims.client_id.as_deref());
    Ok(Authenticated { tenant, user_id: claims.sub.clone(), claims, principal })
}
