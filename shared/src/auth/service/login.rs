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
//!
//! A user with an active second factor gets an `mfa_token` instead of a
//! session ([`super::second_factor`] completes the sign-in); so does a user whose
//! tenant requires one of their role and who has none yet, with a token that
//! only allows enrolment. The tenant's rule is a condition of the session's
//! own transaction: no read of its own.

use super::failures::record_failure;
use super::*;
use crate::auth::device_token;
use crate::ratelimit::{self, Counter};
use crate::store::devices::{DeviceChange, DeviceRecord};
use crate::store::mfa::{ChallengePurpose, FactorUse};

/// What a successful password check opens.
pub(super) struct SignIn<'a> {
    pub tenant: &'a TenantId,
    pub user: &'a UserRecord,
    /// The trusted device the attempt came from (its token hash).
    pub device: Option<&'a str>,
    pub new_hash: Option<&'a str>,
    /// The second factor this sign-in spends, and the actions that come with
    /// it (the challenge spent, the failure limit's room).
    pub factor: Option<(FactorUse, Vec<crate::store::Action<AuthLabel>>)>,
}

/// A login's answer: a session, or the second factor's challenge.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    Mfa(MfaChallenge),
}

/// `{"mfa_required": true, "mfa_token": ...}`: no access token yet.
#[derive(Debug, Serialize)]
pub struct MfaChallenge {
    pub mfa_required: bool,
    pub mfa_token: String,
    pub expires_in: i64,
    /// The tenant requires a second factor the user has not enrolled: the
    /// token allows only enrolment (`POST /v1/mfa/totp` and its confirmation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enrolment_required: bool,
}

/// What [`open_session`] did.
pub(super) enum Opened {
    Tokens(TokenPair),
    /// The tenant requires a second factor of the user's role.
    MfaRequired,
    /// The user item is no longer where it was read (the migration moved
    /// it to its lookup key): read it again.
    Moved,
}

pub async fn login(app: &App, ctx: &RequestContext, request: Credentials) -> Result<LoginOutcome, AppError> {
    let tenant = tenant_of(&request.tenant_id)?;
    let email = Email::parse(&request.email)?;
    check_password_size(&request.password)?;
    let find = || user_by_email(app, &tenant, &email);
    let user = find().await?;
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
    if user.mfa.as_ref().is_some_and(|m| m.is_active()) {
        // The rehash waits for a login without the second step's delay.
        let challenge = issue_challenge(app, &user, device, ChallengePurpose::SignIn).await?;
        tracing::info!(tenant = %tenant, user_id = %user.user_id, "password right; second factor due");
        return Ok(LoginOutcome::Mfa(challenge));
    }
    let cost = app.config.argon2;
    let new_hash =
        if rehash { Some(blocking(move || password::hash(cost, &password)).await??) } else { None };
    let mut sign_in = SignIn {
        tenant: &tenant,
        user: &user,
        device: device.as_deref(),
        new_hash: new_hash.as_deref(),
        factor: None,
    };
    let mut opened = open_session(app, ctx, &sign_in).await?;
    let moved;
    if let Opened::Moved = opened {
        // The migration moved the user item between our read and our
        // write: the same user, with the hash we verified, is read again.
        moved = find()
            .await?
            .filter(|u| u.user_id == user.user_id && u.password_hash == user.password_hash)
            .ok_or(AppError::Unauthorized(INVALID_CREDENTIALS))?;
        sign_in.user = &moved;
        opened = open_session(app, ctx, &sign_in).await?;
    }
    let tokens = match opened {
        Opened::Moved => return Err(AppError::Unavailable("the user item moved twice; retry".into())),
        Opened::Tokens(tokens) => tokens,
        Opened::MfaRequired => {
            let challenge = issue_challenge(app, &user, device, ChallengePurpose::Enrolment).await?;
            tracing::info!(tenant = %tenant, user_id = %user.user_id, "password right; enrolment required");
            return Ok(LoginOutcome::Mfa(challenge));
        }
    };
    tracing::info!(
        tenant = %tenant,
        user_id = %user.user_id,
        trusted_device = device.is_some(),
        rehashed = new_hash.is_some(),
        "login succeeded"
    );
    Ok(LoginOutcome::Tokens(tokens))
}

/// The user `email` signs in as: found by the email's keyed hash (the
/// container's cached lookup key: no KMS call of its own) or, for a user the
/// migration has not moved yet, by the email itself; both keys in one read.
pub async fn user_by_email(
    app: &App,
    tenant: &TenantId,
    email: &Email,
) -> Result<Option<UserRecord>, AppError> {
    let lookup = crate::privacy::lookup::email(app, tenant.as_str(), email).await?;
    let table = &app.config.table_name;
    users::find_for_login(&app.clients.dynamodb, table, tenant.as_str(), &lookup, email.as_str()).await
}

/// Stores a challenge for `user` and answers its `mfa_token` (one put).
async fn issue_challenge(
    app: &App,
    user: &UserRecord,
    device: Option<String>,
    purpose: ChallengePurpose,
) -> Result<MfaChallenge, AppError> {
    let tenant = tenant_of(&user.tenant_id)?;
    let (mfa_token, hash) = mfa_token::generate(&tenant);
    let now = app.now().unix_timestamp();
    let challenge = ChallengeRecord {
        tenant_id: user.tenant_id.clone(),
        user_id: user.user_id.clone(),
        user_key: user.key_name.clone(),
        purpose,
        device,
        attempts: 0,
        created_at: now,
        expires_at: now + mfa_token::TTL_SECONDS,
        used_at: None,
    };
    mfa::insert_challenge(&app.clients.dynamodb, &app.config.table_name, &hash, &challenge).await?;
    Ok(MfaChallenge {
        mfa_required: true,
        mfa_token,
        expires_in: mfa_token::TTL_SECONDS,
        enrolment_required: purpose == ChallengePurpose::Enrolment,
    })
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
) -> Result<Opened, AppError> {
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
            "second_factor": sign_in.factor.as_ref().map(|(factor, _)| match factor {
                FactorUse::Code { .. } | FactorUse::Enrolled { .. } => "totp",
                FactorUse::Recovery { .. } => "recovery_code",
            }),
        }),
    )
    .by(&Actor::user(&user.user_id));
    // The tenant's status (and, without a second factor, its rule on them)
    // rides in the same transaction: no extra round trip.
    let tenant_check = match &sign_in.factor {
        Some(_) => tenants::require_active(table, tenant.as_str())?,
        None => tenants::require_active_without_mfa_for(table, tenant.as_str(), user.role)?,
    };
    let factor = sign_in.factor.as_ref().map(|(factor, _)| factor);
    let mut tx = Tx::new(table, &event)?
        .push(users::record_login(table, user, &at, sign_in.new_hash, &device, factor)?)
        .push(sessions::insert_session(table, &session)?)
        .push(sessions::insert_token(table, &token_hash, &token)?)
        .push(tenant_check);
    for action in sign_in.factor.iter().flat_map(|(_, actions)| actions) {
        tx = tx.push(action.clone());
    }
    let committed = tx.commit(&app.clients.dynamodb).await;
    if let Err(error) = committed {
        if let Some(failure) = error.failed(AuthLabel::Tenant) {
            let tenant_active = failure
                .item
                .clone()
                .and_then(|item| tenants::decode_item(item).ok())
                .is_some_and(|t| t.status == TenantStatus::Active);
            if tenant_active && sign_in.factor.is_none() {
                return Ok(Opened::MfaRequired);
            }
            tracing::info!(tenant = %tenant, user_id = %user.user_id, "login refused: tenant not active");
            return Err(tenant_refusal(failure));
        }
        if error.failed(AuthLabel::RateLimit).is_some() || error.failed(AuthLabel::Challenge).is_some() {
            return Err(AppError::Unauthorized(super::second_factor::INVALID_MFA));
        }
        if error.failed(AuthLabel::User).is_some_and(|failure| failure.item.is_none()) {
            return Ok(Opened::Moved);
        }
        return Err(match error.failed(AuthLabel::User) {
            // The password, role, status or second factor changed between
            // our read and our write (or the code's step was used meanwhile).
            Some(_) if sign_in.factor.is_some() => AppError::Unauthorized(super::second_factor::INVALID_MFA),
            Some(_) => AppError::Unauthorized(INVALID_CREDENTIALS),
            None => error.into_app_error(),
        });
    }
    Ok(Opened::Tokens(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token,
        device_token: Some(device_token),
    }))
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
