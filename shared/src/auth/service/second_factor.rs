//! The second factor: TOTP (RFC 6238) with recovery codes.
//!
//! - [`enrol_totp`] `POST /v1/mfa/totp`: a new secret, shown once (and as an
//!   `otpauth://` URI), stored envelope-encrypted (a KMS data key with the
//!   tenant and user as encryption context), pending until confirmed;
//! - [`confirm_totp`] `POST /v1/mfa/totp/confirm {code}`: activates it and
//!   answers ten recovery codes, shown once, stored hashed;
//! - [`regenerate_recovery_codes`] `POST /v1/mfa/recovery-codes`: a new set,
//!   the old one void;
//! - [`disable_totp`] `POST /v1/mfa/totp/disable {password, code}`;
//! - [`reset_mfa`] `DELETE /v1/users/{id}/mfa`: an owner or admin removes a
//!   user's second factor (an admin not an owner's);
//! - [`complete_sign_in`] `POST /v1/auth/mfa {mfa_token, code | recovery_code}`:
//!   the second step of a login, the token pair.
//!
//! A code is accepted within ±1 step and once: the step of the last accepted
//! code is stored, and the write that accepts one is conditional on it being
//! later. Failed codes count per source IP (before anything is read), per
//! challenge (five, then the `mfa_token` is dead) and per user (ten in 15
//! minutes; a success must find that counter with room, in its own
//! transaction). Enrolment and its confirmation also take the enrolment-only
//! `mfa_token` of a tenant that requires a second factor; the confirmation
//! then opens the session. Every change is an event (`mfa.*`) naming the
//! user and the actor, never a secret or a code.

use super::account::user_of;
use super::login::{Opened, SignIn, open_session};
use super::*;
use crate::auth::principal::ADMINISTRATORS;
use crate::auth::{envelope, recovery_code, totp};
use crate::ratelimit::{self, Counter, Limit};
use crate::store::mfa::{ChallengePurpose, FactorUse, MfaRecord, MfaStatus};
use std::collections::BTreeMap;

pub(super) const INVALID_MFA: &str = "the mfa_token or the code is not valid";
const WRONG_CODE: &str = "the code is not the current one";
const NOT_ENROLLED: &str = "no second factor is active";
const NO_PENDING: &str = "no enrolment to confirm: POST /v1/mfa/totp first";
const ALREADY_ACTIVE: &str = "a second factor is active: disable it first";
const WRONG_PASSWORD_OR_CODE: &str = "the password or the code is not right";
const NO_USER: &str = "the access token is invalid or expired";
/// Failed second-factor attempts per user.
const FAILURE_LIMIT: Limit = Limit::new(10, 900);
const MAX_CODE_CHARS: usize = 64;
/// The longest `mfa_token` taken (openapi.yaml's `maxLength`).
const MAX_MFA_TOKEN_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSignIn {
    pub mfa_token: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disable {
    pub password: String,
    pub code: String,
}

/// The new secret, shown once.
#[derive(Debug, Serialize)]
pub struct Enrolment {
    /// Base32 (RFC 4648, no padding), as authenticator apps take it.
    pub secret: String,
    pub otpauth_uri: String,
    pub algorithm: &'static str,
    pub digits: usize,
    pub period: u64,
}

#[derive(Debug, Serialize)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// A confirmation's answer: the recovery codes, and the token pair when the
/// confirmation completed a sign-in (an enrolment-only `mfa_token`).
#[derive(Debug, Serialize)]
pub struct Confirmed {
    pub recovery_codes: Vec<String>,
    #[serde(flatten)]
    pub tokens: Option<TokenPair>,
}

/// Who enrols: a signed-in user, or the holder of an enrolment-only `mfa_token`.
enum Enroller {
    Signed(Principal),
    Challenge { hash: String, challenge: ChallengeRecord },
}

fn bearer(request: &lambda_http::Request) -> Option<&str> {
    let header = crate::http::header_text(request, "authorization")?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn code_field(field: &str, code: &str) -> Result<(), AppError> {
    if code.is_empty() || code.chars().count() > MAX_CODE_CHARS {
        return Err(AppError::bad_request(
            field,
            format!("{field}: is required, at most {MAX_CODE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The live challenge a presented `mfa_token` names, of `purpose`.
async fn live_challenge(
    app: &App,
    token: &str,
    purpose: ChallengePurpose,
) -> Result<(String, ChallengeRecord), AppError> {
    let (tenant, hash) = mfa_token::parse(token).ok_or(AppError::Unauthorized(INVALID_MFA))?;
    let now = app.now().unix_timestamp();
    let challenge =
        mfa::find_challenge(&app.clients.dynamodb, &app.config.table_name, tenant.as_str(), &hash)
            .await?
            .filter(|c| c.purpose == purpose && c.is_live(now, mfa_token::MAX_ATTEMPTS))
            .ok_or(AppError::Unauthorized(INVALID_MFA))?;
    Ok((hash, challenge))
}

async fn enroller(app: &App, request: &lambda_http::Request) -> Result<Enroller, AppError> {
    match bearer(request) {
        Some(token) if mfa_token::looks_like(token) => {
            let (hash, challenge) = live_challenge(app, token, ChallengePurpose::Enrolment).await?;
            Ok(Enroller::Challenge { hash, challenge })
        }
        _ => {
            let who = authenticate(app, request).await?;
            Ok(Enroller::Signed(user_of(&who)?.clone()))
        }
    }
}

/// The user item of a signed-in user (their directory entry says where it is).
async fn user_item(app: &App, principal: &Principal) -> Result<UserRecord, AppError> {
    let (dynamodb, table, tenant) =
        (&app.clients.dynamodb, &app.config.table_name, principal.tenant.as_str());
    let member = members::find(dynamodb, table, tenant, &principal.id)
        .await?
        .ok_or(AppError::Unauthorized(NO_USER))?;
    users::find_for_member(dynamodb, table, &member)
        .await?
        .filter(|u| u.user_id == principal.id)
        .ok_or(AppError::Unauthorized(NO_USER))
}

fn principal_of(user: &UserRecord) -> Result<Principal, AppError> {
    Ok(Principal {
        kind: PrincipalKind::User,
        id: user.user_id.clone(),
        tenant: tenant_of(&user.tenant_id)?,
        roles: vec![user.role],
    })
}

/// The enroller's principal and user item.
async fn enrolling_user(app: &App, enroller: &Enroller) -> Result<(Principal, UserRecord), AppError> {
    match enroller {
        Enroller::Signed(principal) => Ok((principal.clone(), user_item(app, principal).await?)),
        Enroller::Challenge { challenge, .. } => {
            let user = users::find_by_key_name(
                &app.clients.dynamodb,
                &app.config.table_name,
                &challenge.tenant_id,
                &challenge.user_key,
            )
            .await?
            .filter(|u| u.user_id == challenge.user_id && u.status == UserStatus::Active)
            .ok_or(AppError::Unauthorized(INVALID_MFA))?;
            Ok((principal_of(&user)?, user))
        }
    }
}

fn mfa_event(
    principal: &Principal,
    ctx: &RequestContext,
    event_type: &str,
    user_id: &str,
    now: time::OffsetDateTime,
    extra: serde_json::Value,
) -> OutboxEvent {
    let mut payload = json!({ "user_id": user_id });
    if let (Some(map), serde_json::Value::Object(more)) = (payload.as_object_mut(), extra) {
        map.extend(more);
    }
    OutboxEvent::new(&principal.tenant, "user", user_id, event_type, now, &ctx.correlation_id, payload)
        .by(&principal.actor())
}

fn failures_of(principal: &Principal, now: time::OffsetDateTime) -> Counter {
    Counter::per_principal("mfa_failures", principal, FAILURE_LIMIT, now)
}

/// Counts a failed code of a signed-in user; 429 once the limit is reached.
async fn count_failure(app: &App, principal: &Principal) -> Result<(), AppError> {
    ratelimit::consume(app, &failures_of(principal, app.now())).await
}

/// The step of `code` for the secret of `mfa`, if it is a current, unused one.
async fn accepted_step(
    app: &App,
    user: &UserRecord,
    mfa: &MfaRecord,
    code: &str,
) -> Result<Option<u64>, AppError> {
    let secret = envelope::open(app, &user.tenant_id, &user.user_id, &mfa.secret).await?;
    Ok(totp::accepted_step(&secret, code.trim(), app.now().unix_timestamp(), mfa.last_step))
}

fn new_recovery(now: i64) -> Result<(Vec<String>, BTreeMap<String, i64>), AppError> {
    let codes = recovery_code::generate();
    let hashes = codes
        .iter()
        .map(|code| recovery_code::hash(code).map(|hash| (hash, now)))
        .collect::<Option<BTreeMap<_, _>>>()
        .ok_or_else(|| AppError::Internal("a generated recovery code does not hash".into()))?;
    Ok((codes, hashes))
}

/// `POST /v1/mfa/totp`.
pub async fn enrol_totp(
    app: &App,
    ctx: &RequestContext,
    request: &lambda_http::Request,
) -> Result<Enrolment, AppError> {
    let enroller = enroller(app, request).await?;
    let (principal, user) = enrolling_user(app, &enroller).await?;
    if user.mfa.as_ref().is_some_and(MfaRecord::is_active) {
        return Err(AppError::Conflict(ALREADY_ACTIVE.into()));
    }
    let now = app.now();
    let secret = totp::new_secret();
    let sealed = envelope::seal(app, &user.tenant_id, &user.user_id, &secret).await?;
    let record = MfaRecord {
        id: crate::ids::new_id(),
        status: MfaStatus::Pending,
        secret: sealed,
        created_at: now.unix_timestamp(),
        activated_at: None,
        last_step: None,
        recovery: None,
    };
    let table = &app.config.table_name;
    let limit = Counter::for_write(app, "enrol_totp", &principal);
    let event = mfa_event(&principal, ctx, "mfa.enrolment_started", &user.user_id, now, json!({}));
    Tx::new(table, &event)?
        .push(mfa::start_enrolment(table, &user, &record)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::User).is_some() => AppError::Conflict(ALREADY_ACTIVE.into()),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "totp enrolment started");
    let issuer = format!("{} {}", app.config.token_issuer, user.tenant_id);
    // The account name shown in the authenticator app: the email, opened.
    let account = crate::privacy::personal::shown(
        app,
        &user.tenant_id,
        &user.user_id,
        crate::privacy::personal::EMAIL,
        user.email.as_deref(),
        user.email_sealed.as_deref(),
    )
    .await?
    .unwrap_or_else(|| user.user_id.clone());
    Ok(Enrolment {
        secret: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(&issuer, &account, &secret),
        algorithm: "SHA1",
        digits: totp::DIGITS,
        period: totp::STEP_SECONDS,
    })
}

/// `POST /v1/mfa/totp/confirm`.
pub async fn confirm_totp(
    app: &App,
    ctx: &RequestContext,
    request: &lambda_http::Request,
    body: TotpCode,
) -> Result<Confirmed, AppError> {
    code_field("code", &body.code)?;
    let enroller = enroller(app, request).await?;
    let (principal, user) = enrolling_user(app, &enroller).await?;
    let pending = match &user.mfa {
        Some(mfa) if mfa.status == MfaStatus::Pending => mfa.clone(),
        Some(_) => return Err(AppError::Conflict(ALREADY_ACTIVE.into())),
        None => return Err(AppError::Conflict(NO_PENDING.into())),
    };
    let Some(step) = accepted_step(app, &user, &pending, &body.code).await? else {
        count_failure(app, &principal).await?;
        tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "totp confirmation refused: wrong code");
        return Err(AppError::forbidden(WRONG_CODE));
    };
    let now = app.now();
    let (codes, hashes) = new_recovery(now.unix_timestamp())?;
    let table = &app.config.table_name;
    let limit = Counter::for_write(app, "confirm_totp", &principal);
    let failures = failures_of(&principal, now);
    let event = mfa_event(
        &principal,
        ctx,
        "mfa.enabled",
        &user.user_id,
        now,
        json!({ "method": "totp", "recovery_codes": codes.len() }),
    );
    let mut tx = Tx::new(table, &event)?
        .push(mfa::activate(table, &user, &pending.id, step, &hashes, now.unix_timestamp())?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?);
    if let Enroller::Challenge { hash, challenge } = &enroller {
        tx = tx.push(mfa::spend_challenge(table, hash, challenge, now.unix_timestamp())?);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        match ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::Challenge).is_some() => AppError::Unauthorized(INVALID_MFA),
            None if error.failed(AuthLabel::User).is_some() => {
                AppError::Conflict("the enrolment changed meanwhile: start again".into())
            }
            None => error.into_app_error(),
        }
    })?;
    tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "totp enabled");
    let tokens = match &enroller {
        Enroller::Signed(_) => None,
        Enroller::Challenge { challenge, .. } => {
            // The enrolment was the sign-in's second factor: the session opens.
            let tenant = tenant_of(&user.tenant_id)?;
            let room = ratelimit::room(table, AuthLabel::RateLimit, &failures)?;
            let sign_in = SignIn {
                tenant: &tenant,
                user: &user,
                device: challenge.device.as_deref(),
                new_hash: None,
                factor: Some((FactorUse::Enrolled { id: pending.id.clone() }, vec![room])),
            };
            match open_session(app, ctx, &sign_in).await? {
                Opened::Tokens(tokens) => Some(tokens),
                Opened::Moved => return Err(AppError::Unauthorized(INVALID_MFA)),
                Opened::MfaRequired => {
                    return Err(AppError::Internal("a session with a factor refused".into()));
                }
            }
        }
    };
    Ok(Confirmed { recovery_codes: codes, tokens })
}

/// `POST /v1/mfa/recovery-codes`.
pub async fn regenerate_recovery_codes(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
) -> Result<RecoveryCodes, AppError> {
    let principal = user_of(who)?;
    let user = user_item(app, principal).await?;
    let active =
        user.mfa.as_ref().filter(|m| m.is_active()).ok_or_else(|| AppError::Conflict(NOT_ENROLLED.into()))?;
    let now = app.now();
    let (codes, hashes) = new_recovery(now.unix_timestamp())?;
    let table = &app.config.table_name;
    let limit = Counter::for_write(app, "regenerate_recovery_codes", principal);
    let event = mfa_event(
        principal,
        ctx,
        "mfa.recovery_codes_regenerated",
        &user.user_id,
        now,
        json!({ "recovery_codes": codes.len() }),
    );
    Tx::new(table, &event)?
        .push(mfa::replace_recovery(table, &user, &active.id, &hashes)?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::User).is_some() => AppError::Conflict(NOT_ENROLLED.into()),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "recovery codes regenerated");
    Ok(RecoveryCodes { recovery_codes: codes })
}

/// `POST /v1/mfa/totp/disable`: the password and a current code.
pub async fn disable_totp(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    body: Disable,
) -> Result<(), AppError> {
    let principal = user_of(who)?;
    check_password_size(&body.password)
        .map_err(|_| AppError::bad_request("password", "password: is required, at most 1024 bytes"))?;
    code_field("code", &body.code)?;
    let user = user_item(app, principal).await?;
    let active = user
        .mfa
        .clone()
        .filter(MfaRecord::is_active)
        .ok_or_else(|| AppError::Conflict(NOT_ENROLLED.into()))?;
    // Limited like untrusted logins before any hashing.
    let attempts =
        Counter::per_principal("disable_totp", principal, app.config.rate_limits.login_ip, app.now());
    ratelimit::consume(app, &attempts).await?;
    let cost = app.config.argon2;
    let (stored, password) = (user.password_hash.clone(), body.password);
    let verdict = blocking(move || password::verify(cost, &password, &stored)).await?;
    let step = match verdict {
        Verdict::Match { .. } => accepted_step(app, &user, &active, &body.code).await?,
        Verdict::Mismatch => None,
    };
    let Some(step) = step else {
        count_failure(app, principal).await?;
        tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "totp disable refused");
        return Err(AppError::forbidden(WRONG_PASSWORD_OR_CODE));
    };
    let now = app.now();
    let table = &app.config.table_name;
    let failures = failures_of(principal, now);
    let event = mfa_event(principal, ctx, "mfa.disabled", &user.user_id, now, json!({ "method": "totp" }));
    Tx::new(table, &event)?
        .push(mfa::disable(table, &user, &active.id, step)?)
        .push(ratelimit::room(table, AuthLabel::RateLimit, &failures)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match ratelimit::refused(&error, AuthLabel::RateLimit, &failures, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::User).is_some() => AppError::forbidden(WRONG_PASSWORD_OR_CODE),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "totp disabled");
    Ok(())
}

/// `DELETE /v1/users/{id}/mfa`: an owner or admin removes the user's second
/// factor (an admin not an owner's). One read (the target's directory
/// entry, for the email) and one transaction, in which the caller's own
/// entry must still hold the role (unless resetting their own).
pub async fn reset_mfa(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    user_id: &str,
) -> Result<(), AppError> {
    let caller = &who.principal;
    caller.require_any(&ADMINISTRATORS)?;
    if !crate::ids::is_valid_id(user_id) {
        return Err(AppError::NotFound("user"));
    }
    let (table, tenant) = (&app.config.table_name, caller.tenant.as_str());
    let target = members::find(&app.clients.dynamodb, table, tenant, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if target.role == Role::Owner && !caller.is_owner() {
        return Err(AppError::forbidden("an admin cannot reset an owner's second factor"));
    }
    let now = app.now();
    let event = OutboxEvent::new(
        &caller.tenant,
        "user",
        user_id,
        "mfa.reset",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user_id }),
    )
    .by(&caller.actor());
    let limit = Counter::for_write(app, "reset_mfa", caller);
    let mut tx = Tx::new(table, &event)?
        .push(mfa::reset(
            table,
            tenant,
            target.user_key_name().ok_or(AppError::NotFound("user"))?,
            user_id,
            !caller.is_owner(),
        )?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?);
    let own = caller.kind == PrincipalKind::User && caller.id == user_id;
    if !own {
        let required: &[Role] = if target.role == Role::Owner { &[Role::Owner] } else { &ADMINISTRATORS };
        tx = tx.push(members::require_role(table, caller, required)?);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        match ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::Caller).is_some() => {
                AppError::forbidden("your current role does not allow this change")
            }
            None if error.failed(AuthLabel::User).is_some() => {
                AppError::Conflict("the user changed meanwhile; retry".into())
            }
            None => error.into_app_error(),
        }
    })?;
    tracing::info!(tenant = %tenant, user_id = %user_id, "second factor reset by an administrator");
    Ok(())
}

/// `POST /v1/auth/mfa`: the second step of a login.
pub async fn complete_sign_in(
    app: &App,
    ctx: &RequestContext,
    request: MfaSignIn,
) -> Result<TokenPair, AppError> {
    let (code, recovery) = match (request.code, request.recovery_code) {
        (Some(code), None) => (Some(code), None),
        (None, Some(recovery)) => (None, Some(recovery)),
        _ => return Err(AppError::bad_request("code", "give code or recovery_code (one of them)")),
    };
    code_field(
        if code.is_some() { "code" } else { "recovery_code" },
        code.as_deref().or(recovery.as_deref()).unwrap_or_default(),
    )?;
    if request.mfa_token.chars().count() > MAX_MFA_TOKEN_CHARS {
        return Err(AppError::bad_request("mfa_token", "mfa_token: is not an mfa_token"));
    }
    let now = app.now();
    ratelimit::consume(app, &Counter::per_source("mfa", &ctx.source_ip, app.config.rate_limits.mfa_ip, now))
        .await?;
    let (hash, challenge) = live_challenge(app, &request.mfa_token, ChallengePurpose::SignIn).await?;
    let table = &app.config.table_name;
    let user =
        users::find_by_key_name(&app.clients.dynamodb, table, &challenge.tenant_id, &challenge.user_key)
            .await?
            .filter(|u| u.user_id == challenge.user_id)
            .ok_or(AppError::Unauthorized(INVALID_MFA))?;
    let active = user.mfa.clone().filter(MfaRecord::is_active).ok_or(AppError::Unauthorized(INVALID_MFA))?;
    if user.status == UserStatus::Disabled {
        return Err(AppError::forbidden(USER_DISABLED));
    }
    let principal = principal_of(&user)?;
    let failures = failures_of(&principal, now);
    let factor = match (code, recovery) {
        (Some(code), _) => accepted_step(app, &user, &active, &code)
            .await?
            .map(|step| FactorUse::Code { id: active.id.clone(), step }),
        (_, Some(recovery)) => recovery_code::hash(&recovery)
            .filter(|hash| active.recovery.as_ref().is_some_and(|codes| codes.contains_key(hash)))
            .map(|hash| FactorUse::Recovery { id: active.id.clone(), hash }),
        (None, None) => None,
    };
    let Some(factor) = factor else {
        record_failure_of(app, &hash, &challenge, &failures).await?;
        tracing::info!(tenant = %principal.tenant, user_id = %user.user_id, "second factor refused");
        return Err(AppError::Unauthorized(INVALID_MFA));
    };
    let actions = vec![
        mfa::spend_challenge(table, &hash, &challenge, now.unix_timestamp())?,
        ratelimit::room(table, AuthLabel::RateLimit, &failures)?,
    ];
    let tenant = principal.tenant.clone();
    let sign_in = SignIn {
        tenant: &tenant,
        user: &user,
        device: challenge.device.as_deref(),
        new_hash: None,
        factor: Some((factor, actions)),
    };
    match open_session(app, ctx, &sign_in).await? {
        Opened::Tokens(tokens) => {
            tracing::info!(tenant = %tenant, user_id = %user.user_id, "login succeeded with a second factor");
            Ok(tokens)
        }
        Opened::MfaRequired => Err(AppError::Internal("a session with a factor refused".into())),
        // The migration moved the user item meanwhile: sign in again.
        Opened::Moved => Err(AppError::Unauthorized(INVALID_MFA)),
    }
}

/// A wrong code: one attempt fewer on the challenge, one failure more for
/// the user (429 once their limit is reached).
async fn record_failure_of(
    app: &App,
    hash: &str,
    challenge: &ChallengeRecord,
    failures: &Counter,
) -> Result<(), AppError> {
    let table = &app.config.table_name;
    let now = app.now();
    Tx::<AuthLabel>::without_event(table)
        .push(mfa::count_failure(table, hash, challenge, now.unix_timestamp())?)
        .push(ratelimit::action(table, AuthLabel::RateLimit, failures)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match ratelimit::refused(&error, AuthLabel::RateLimit, failures, now) {
            Some(limited) => limited,
            None if error.failed(AuthLabel::Challenge).is_some() => AppError::Unauthorized(INVALID_MFA),
            None => error.into_app_error(),
        })
}
