//! Access tokens signed by the KMS key, the JWKS, and the bearer check.

use super::*;
use crate::auth::keys;

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
    // The header names the key the signing alias pointed at last; KMS says
    // which key signed, and a rotation since is caught and signed again.
    for _ in 0..3 {
        let kid = app.token_keys.signing_kid(app)?;
        let input = jwt::signing_input(&kid, &claims);
        let (signed_by, der) = sign(app, &input).await?;
        if signed_by == kid {
            let token = jwt::assemble(&input, &der).map_err(|e| AppError::internal("assemble token", e))?;
            return Ok((token, ttl));
        }
        tracing::info!(kid = %signed_by, "the signing alias points at another key now");
        app.token_keys.signed_with(&signed_by);
    }
    Err(AppError::Unavailable("the signing key is changing; retry".into()))
}

/// Signs `input` with the current key; returns the id of the key that signed
/// and the DER signature.
async fn sign(app: &App, input: &str) -> Result<(String, Vec<u8>), AppError> {
    // RAW: KMS hashes the message itself (SHA-256), as ES256 requires.
    let signed = app
        .clients
        .kms
        .sign()
        .key_id(app.config.token_signing_reference()?)
        .message(Blob::new(input.as_bytes()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("sign access token", e))?;
    let der = signed.signature().ok_or_else(|| AppError::Internal("KMS returned no signature".into()))?;
    let key = signed
        .key_id()
        .map(keys::key_id_of)
        .ok_or_else(|| AppError::Internal("KMS returned no key id".into()))?;
    Ok((key.to_owned(), der.as_ref().to_vec()))
}

/// The current verification key.
pub async fn token_key(app: &App) -> Result<TokenKey, AppError> {
    let set = keys::published(app, false).await?;
    set.current().cloned().ok_or_else(|| AppError::Internal("no token key".into()))
}

/// The JWKS document: the current key and, after a rotation, the previous
/// one until it is retired.
pub async fn jwks(app: &App) -> Result<serde_json::Value, AppError> {
    let set = keys::published(app, false).await?;
    let keys: Vec<_> = set.keys.iter().map(|key| key.jwk.clone()).collect();
    Ok(json!({ "keys": keys }))
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
    authenticate_token(app, token).await
}

/// Verifies an access token presented some other way than the
/// `Authorization` header (a WebSocket's `$connect`).
pub async fn authenticate_token(app: &App, token: &str) -> Result<Authenticated, AppError> {
    let expected = Expected {
        issuer: &app.config.token_issuer,
        audience: &app.config.token_audience,
        now: app.now().unix_timestamp(),
    };
    let mut set = keys::published(app, false).await?;
    // A key published since the set was fetched (a rotation): fetch it again.
    if jwt::kid_of(token).is_some_and(|kid| set.find(&kid).is_none()) {
        set = keys::published(app, true).await?;
    }
    let claims = jwt::verify(token, &set.keys, &expected).map_err(|reason| {
        tracing::info!(%reason, "access token refused");
        AppError::Unauthorized("the access token is invalid or expired")
    })?;
    let tenant = TenantId::parse(&claims.tenant)
        .map_err(|_| AppError::Unauthorized("the access token is invalid or expired"))?;
    let principal =
        Principal::from_claims(&claims.sub, tenant.clone(), &claims.roles, claims.client_id.as_deref());
    Ok(Authenticated { tenant, user_id: claims.sub.clone(), claims, principal })
}
