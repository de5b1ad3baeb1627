//! Password login: the lockout counters, the rehash, the first session.

use super::*;

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
