//! Access tokens signed by the KMS key, the JWKS, and the bearer check.

use super::*;

/// Signs an access token for `principal` with the KMS key; returns it and
/// its lifetime. Machine clients get `client_id` = `sub` (RFC 9068).
pub async fn issue_access_token(app: &App, principal: &Principal) -> Result<(String, i64), AppError> {
    sign_access_token(app, principal, None).await
}

/// [`issue_access_token`] for a user's session: the token names it (`sid`),
/// so the session routes know which one is the caller's.
pub async fn issue_session_token(
    app: &App,
    principal: &Principal,
    session_id: &str,
) -> Result<(String, i64), AppError> {
    sign_access_token(app, principal, Some(session_id)).await
}

async fn sign_access_token(
    app: &App,
    principal: &Principal,
    session_id: Option<&str>,
) -> Result<(String, i64), AppError> {
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
        sid: session_id.map(str::to_owned),
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
