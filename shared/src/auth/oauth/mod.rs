//! `POST /v1/oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749
//! §4.4) for a tenant's machine clients. The answer is the same ES256 access
//! token users get, with `sub` = `client_id` = the client id (RFC 9068) and
//! the granted roles; there is no refresh token (§4.4.3).
//!
//! - Client authentication: HTTP Basic or the body's `client_id` and
//!   `client_secret` ([`request`]); a secret is checked by its SHA-256 in
//!   constant time ([`super::client_secret`]), the previous secret of a
//!   rotation until its grace period ends.
//! - `scope` (optional): space-separated role names, each one the client
//!   holds; the token gets those roles only. Without it, all of them.
//! - Errors are RFC 6749 §5.2 JSON `{error, error_description}`:
//!   `invalid_request`, `unsupported_grant_type`, `invalid_scope` (400),
//!   `invalid_client` (401 with `WWW-Authenticate: Basic`), and, for an
//!   authenticated client of a suspended tenant, `unauthorized_client` with
//!   403 (like login, suspension is told only to who holds the secret).
//!
//! Round trips: one BatchGetItem (the client's entry and the tenant item,
//! strongly consistent) and one KMS Sign. Nothing is written, so issuing a
//! token writes no event; it is logged (tenant, client, roles, method).

mod request;

pub use request::{ClientCredentials, GRANT_TYPE, Method, TokenRequest};

use super::client_secret::{self, Accepted};
use super::principal::{Principal, PrincipalKind, Role};
use super::service::{TENANT_INACTIVE, TENANT_SUSPENDED, issue_access_token};
use crate::app::App;
use crate::error::AppError;
use crate::http::Reply;
use crate::store::clients::{self, ClientRecord, ClientStatus};
use crate::store::tenants::TenantStatus;
use crate::tenant::TenantId;
use http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// A refused token request, as RFC 6749 §5.2 names it.
#[derive(Debug)]
pub enum OAuthError {
    InvalidRequest(String),
    InvalidClient,
    UnsupportedGrantType,
    InvalidScope(String),
    /// The client authenticated, but may not get tokens now (its tenant is not active).
    UnauthorizedClient(&'static str),
    /// Our failure, not the request's.
    Server(AppError),
}

impl From<AppError> for OAuthError {
    fn from(error: AppError) -> Self {
        OAuthError::Server(error)
    }
}

impl OAuthError {
    /// The `error` code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::Server(AppError::Unavailable(_)) => "temporarily_unavailable",
            OAuthError::Server(_) => "server_error",
        }
    }

    fn status_and_description(&self) -> (StatusCode, String) {
        match self {
            OAuthError::InvalidRequest(detail) | OAuthError::InvalidScope(detail) => {
                (StatusCode::BAD_REQUEST, detail.clone())
            }
            OAuthError::InvalidClient => (StatusCode::UNAUTHORIZED, "client authentication failed".into()),
            OAuthError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, format!("the only grant type is {GRANT_TYPE}"))
            }
            OAuthError::UnauthorizedClient(detail) => (StatusCode::FORBIDDEN, (*detail).to_owned()),
            OAuthError::Server(AppError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable; retry".into())
            }
            OAuthError::Server(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "an unexpected error occurred".into())
            }
        }
    }
}

/// Renders a refusal as RFC 6749 §5.2 JSON (what OAuth clients parse), not
/// as a problem document; logs it without any request value.
pub fn error_response(error: &OAuthError) -> Response<Body> {
    let (status, description) = error.status_and_description();
    let body = serde_json::json!({ "error": error.code(), "error_description": description });
    match error {
        OAuthError::Server(inner) if status.is_server_error() => {
            tracing::error!(error = %inner, status = status.as_u16(), "token request failed");
        }
        _ => tracing::info!(error = error.code(), status = status.as_u16(), "token request refused"),
    }
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache");
    match error {
        OAuthError::InvalidClient => {
            builder = builder.header(header::WWW_AUTHENTICATE, r#"Basic realm="caas", charset="UTF-8""#);
        }
        OAuthError::Server(AppError::Unavailable(_)) => builder = builder.header(header::RETRY_AFTER, "1"),
        _ => {}
    }
    builder.body(Body::Text(body.to_string())).unwrap_or_else(|_| {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// The granted roles, space-separated.
    pub scope: String,
}

/// Answers one token request.
pub async fn token(app: &App, request: &Request) -> Result<Reply, OAuthError> {
    let token_request = request::parse(request)?;
    let credentials = &token_request.credentials;
    let (tenant, client) = authenticate_client(app, credentials).await?;
    let roles = granted(&client.roles, token_request.scope.as_deref())?;
    let principal = Principal { kind: PrincipalKind::Client, id: client.client_id.clone(), tenant, roles };
    let (access_token, expires_in) = issue_access_token(app, &principal).await?;
    let scope = principal.role_names().join(" ");
    tracing::info!(
        tenant = %principal.tenant,
        client_id = %client.client_id,
        roles = %scope,
        method = credentials.method.as_str(),
        "client token issued"
    );
    let answer = TokenResponse { access_token, token_type: "Bearer", expires_in, scope };
    Ok(Reply::ok(answer)?.with_header("cache-control", "no-store").with_header("pragma", "no-cache"))
}

/// Finds the client (the secret names its tenant), checks the secret and
/// then the tenant: one BatchGetItem.
async fn authenticate_client(
    app: &App,
    credentials: &ClientCredentials,
) -> Result<(TenantId, ClientRecord), OAuthError> {
    let refused = |reason: &'static str| {
        tracing::info!(reason, "client authentication failed");
        OAuthError::InvalidClient
    };
    if !crate::ids::is_valid_id(&credentials.client_id) {
        return Err(refused("malformed client_id"));
    }
    let (tenant, presented) =
        client_secret::parse(&credentials.client_secret).ok_or_else(|| refused("malformed client_secret"))?;
    let table = &app.config.table_name;
    let (client, tenant_record) =
        clients::find_with_tenant(&app.clients.dynamodb, table, tenant.as_str(), &credentials.client_id)
            .await?;
    let client = client
        .filter(|c| c.status == ClientStatus::Active)
        .ok_or_else(|| refused("unknown or revoked client"))?;
    let accepted = Accepted {
        current: client.secret_hash.as_deref(),
        previous: client.previous_secret_hash.as_deref(),
        previous_until: client.previous_secret_expires_at,
    };
    if !accepted.accepts(&presented, app.now().unix_timestamp()) {
        return Err(refused("wrong or expired client_secret"));
    }
    match tenant_record.map(|t| t.status) {
        Some(TenantStatus::Active) => Ok((tenant, client)),
        status => {
            tracing::info!(tenant = %tenant, client_id = %client.client_id, "token refused: tenant not active");
            let suspended = status == Some(TenantStatus::Suspended);
            Err(OAuthError::UnauthorizedClient(if suspended { TENANT_SUSPENDED } else { TENANT_INACTIVE }))
        }
    }
}

/// The roles a token gets: the client's, or the requested scope's if the
/// client holds every one of them.
fn granted(held: &[Role], scope: Option<&[String]>) -> Result<Vec<Role>, OAuthError> {
    let Some(requested) = scope else { return Ok(held.to_vec()) };
    let mut roles = Vec::new();
    for name in requested {
        match Role::parse(name).filter(|role| held.contains(role)) {
            Some(role) => roles.push(role),
            None => {
                return Err(OAuthError::InvalidScope(
                    "the scope names a role this client does not hold".into(),
                ));
            }
        }
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_to_held_roles_only() {
        let held = [Role::Member, Role::Auditor];
        assert_eq!(granted(&held, None).unwrap(), held);
        let asked = vec!["auditor".to_owned(), "auditor".to_owned()];
        assert_eq!(granted(&held, Some(&asked)).unwrap(), [Role::Auditor]);
        for bad in ["admin", "owner", "root"] {
            let error = granted(&held, Some(&[bad.to_owned()])).unwrap_err();
            assert_eq!(error.code(), "invalid_scope", "{bad}");
        }
    }

    #[test]
    fn errors_render_as_rfc_6749_json() {
        let response = error_response(&OAuthError::InvalidClient);
        assert_eq!(response.status(), 401);
        assert!(response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic "));
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let Body::Text(text) = response.body() else { panic!("a text body") };
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["error"], "invalid_client");
        let internal = error_response(&OAuthError::Server(AppError::Internal("table exploded".into())));
        assert_eq!(internal.status(), 500);
        let Body::Text(text) = internal.body() else { panic!("a text body") };
        assert!(text.contains("server_error") && !text.contains("exploded"));
        assert_eq!(error_response(&OAuthError::UnauthorizedClient(TENANT_SUSPENDED)).status(), 403);
        assert_eq!(error_response(&OAuthError::UnsupportedGrantType).status(), 400);
    }
}
