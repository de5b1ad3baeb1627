//! A token request as sent (RFC 6749 §4.4.2): the form body, and the
//! client's authentication, HTTP Basic (§2.3.1: the id and secret are
//! form-urlencoded before base64) or the body's `client_id` and
//! `client_secret`. Nothing here reads stored state.

use super::OAuthError;
use crate::http::{body_bytes, header_text};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Request;
use std::collections::BTreeMap;

pub const GRANT_TYPE: &str = "client_credentials";
const FORM: &str = "application/x-www-form-urlencoded";
/// The parameters we read; any other is ignored (§3.1).
const KNOWN: [&str; 4] = ["grant_type", "scope", "client_id", "client_secret"];
/// Longest parameter or Basic credential we look at (ours are far shorter).
const MAX_PARAMETER_BYTES: usize = 1024;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basic,
    Body,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Basic => "client_secret_basic",
            Method::Body => "client_secret_post",
        }
    }
}

/// The presented credentials (deliberately without `Debug`: it holds the secret).
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub method: Method,
}

pub struct TokenRequest {
    pub credentials: ClientCredentials,
    /// The requested scope tokens (role names), when a scope was given.
    pub scope: Option<Vec<String>>,
}

fn invalid(detail: &str) -> OAuthError {
    OAuthError::InvalidRequest(detail.to_owned())
}

/// Parses and checks the request's syntax: form body, grant type, scope
/// syntax, one client authentication method.
pub fn parse(request: &Request) -> Result<TokenRequest, OAuthError> {
    let form = form(request)?;
    match form.get("grant_type").map(String::as_str) {
        None => return Err(invalid("grant_type is required")),
        Some(GRANT_TYPE) => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
    }
    let scope = form.get("scope").and_then(|scope| scope_tokens(scope).transpose()).transpose()?;
    let credentials = credentials(request, &form)?;
    Ok(TokenRequest { credentials, scope })
}

/// The known parameters of the body. §3.1: a parameter without a value is
/// treated as omitted, and none may be included more than once.
fn form(request: &Request) -> Result<BTreeMap<&'static str, String>, OAuthError> {
    let content_type = header_text(request, "content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(FORM) {
        return Err(invalid("the body must be application/x-www-form-urlencoded"));
    }
    let bytes = body_bytes(request).map_err(|_| invalid("the request body is too large"))?;
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        let Some(known) = KNOWN.into_iter().find(|known| *known == name) else { continue };
        if value.is_empty() {
            continue;
        }
        if value.len() > MAX_PARAMETER_BYTES {
            return Err(invalid(&format!("{known} is too long")));
        }
        if params.insert(known, value.into_owned()).is_some() {
            return Err(invalid(&format!("{known} is repeated")));
        }
    }
    Ok(params)
}

/// §3.3: space-delimited scope tokens of printable ASCII except `"` and `\`;
/// `None` when there is none.
fn scope_tokens(scope: &str) -> Result<Option<Vec<String>>, OAuthError> {
    let tokens: Vec<String> = scope.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let well_formed =
        |token: &String| token.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    if !tokens.iter().all(well_formed) {
        return Err(OAuthError::InvalidScope("the scope is malformed".into()));
    }
    Ok((!tokens.is_empty()).then_some(tokens))
}

fn credentials(request: &Request, form: &BTreeMap<&str, String>) -> Result<ClientCredentials, OAuthError> {
    let (body_id, body_secret) = (form.get("client_id"), form.get("client_secret"));
    let Some(header) = header_text(request, "authorization") else {
        return match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(ClientCredentials {
                client_id: id.clone(),
                client_secret: secret.clone(),
                method: Method::Body,
            }),
            _ => Err(OAuthError::InvalidClient),
        };
    };
    // §2.3: one authentication method per request; `client_id` in the body
    // may still identify the client (§3.2.1) if it is the same one.
    if body_secret.is_some() {
        return Err(invalid("use one client authentication method, not both"));
    }
    let (client_id, client_secret) = basic(header).ok_or(OAuthError::InvalidClient)?;
    if body_id.is_some_and(|id| *id != client_id) {
        return Err(invalid("client_id is not the authenticated client"));
    }
    Ok(ClientCredentials { client_id, client_secret, method: Method::Basic })
}

/// The id and secret of `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
fn basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    let encoded = encoded.trim();
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4 * MAX_PARAMETER_BYTES {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decoded(id)?, form_decoded(secret)?))
}

/// One form-urlencoded component, decoded (`+` is a space); `None` if empty
/// or not UTF-8.
fn form_decoded(component: &str) -> Option<String> {
    let spaced = component.replace('+', " ");
    let text = percent_encoding::percent_decode_str(&spaced).decode_utf8().ok()?;
    (!text.is_empty()).then(|| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = http::Request::builder().method("POST");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    const FORM_TYPE: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    fn error_of(headers: &[(&str, &str)], body: &str) -> OAuthError {
        match parse(&request(headers, body)) {
            Err(error) => error,
            Ok(_) => panic!("{body} parsed"),
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aid+1:s%2Bcr%C3%A9t"));
        let parsed =
            parse(&request(&[FORM_TYPE, ("authorization", &header)], "grant_type=client_credentials"))
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(parsed.credentials.client_id, "my:id 1");
        assert_eq!(parsed.credentials.client_secret, "s+crét");
        assert_eq!(parsed.credentials.method, Method::Basic);
        assert!(parsed.scope.is_none());
        for bad in ["Basic !!!", "Basic", "Bearer abc", &format!("Basic {}", STANDARD.encode("no-colon"))] {
            let error = error_of(&[FORM_TYPE, ("authorization", bad)], "grant_type=client_credentials");
            assert!(matches!(error, OAuthError::InvalidClient), "{bad}: {error:?}");
        }
    }

    #[test]
    fn body_credentials_scopes_and_refusals() {
        let body = "grant_type=client_credentials&client_id=c&client_secret=s&scope=member++auditor&x=1&x=2";
        let parsed = parse(&request(&[FORM_TYPE], body)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(parsed.credentials.method, Method::Body);
        assert_eq!(parsed.scope, Some(vec!["member".to_owned(), "auditor".to_owned()]));
        let form = FORM_TYPE.1;
        let cases = [
            (form, "client_id=c&client_secret=s", "invalid_request"),
            (form, "grant_type=&client_id=c&client_secret=s", "invalid_request"),
            (form, "grant_type=password&client_id=c&client_secret=s", "unsupported_grant_type"),
            (form, "grant_type=client_credentials&client_id=c", "invalid_client"),
            ("application/json", "{}", "invalid_request"),
            (form, "grant_type=client_credentials&grant_type=client_credentials", "invalid_request"),
            (form, "grant_type=client_credentials&client_id=c&client_secret=s&scope=a%22b", "invalid_scope"),
        ];
        for (content_type, body, code) in cases {
            assert_eq!(error_of(&[("content-type", content_type)], body).code(), code, "{body}");
        }
        let both = format!("Basic {}", STANDARD.encode("c:s"));
        let error =
            error_of(&[FORM_TYPE, ("authorization", &both)], "grant_type=client_credentials&client_secret=s");
        assert_eq!(error.code(), "invalid_request");
        let other =
            error_of(&[FORM_TYPE, ("authorization", &both)], "grant_type=client_credentials&client_id=d");
        assert_eq!(other.code(), "invalid_request");
    }
}
