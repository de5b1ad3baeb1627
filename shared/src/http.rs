//! HTTP glue shared by every API function: body parsing with field-naming
//! errors, the correlation id, replies, and the single mapping from
//! [`AppError`] to an RFC 9457 `application/problem+json` response.

use crate::error::AppError;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use tracing::Instrument;

/// Bodies above this are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const CORRELATION_HEADER: &str = "x-correlation-id";
const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    /// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`).
    pub source_ip: String,
    /// The `User-Agent` API Gateway recorded, if any.
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// A context for work that did not come through API Gateway (jobs, tests).
    pub fn internal(correlation_id: &str) -> Self {
        Self { correlation_id: correlation_id.to_owned(), source_ip: "internal".into(), user_agent: None }
    }
}

/// The source address and user agent of an HTTP API (payload 2.0) request.
fn caller_of(request: &Request) -> (String, Option<String>) {
    use lambda_http::request::RequestContext as Context;
    match request.request_context_ref() {
        Some(Context::ApiGatewayV2(context)) => (
            context.http.source_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| "unknown".into()),
            context.http.user_agent.clone().filter(|agent| !agent.is_empty()),
        ),
        _ => ("unknown".into(), None),
    }
}

/// A successful answer: status, optional JSON body, extra headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: StatusCode, body: impl Serialize) -> Result<Self, AppError> {
        let body = serde_json::to_value(body).map_err(|e| AppError::internal("encode reply", e))?;
        Ok(Self { status, body: Some(body), headers: Vec::new() })
    }

    pub fn ok(body: impl Serialize) -> Result<Self, AppError> {
        Self::json(StatusCode::OK, body)
    }

    pub fn created(body: impl Serialize) -> Result<Self, AppError> {
        Self::json(StatusCode::CREATED, body)
    }

    pub fn no_content() -> Self {
        Self { status: StatusCode::NO_CONTENT, body: None, headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Runs one API request: sets up the correlation id and log span, calls the
/// handler, renders its reply or its error. Never returns `Err` for anything
/// the caller sent, so the runtime never turns bad input into a 500.
pub async fn serve<F, Fut>(request: Request, handler: F) -> Result<Response<Body>, lambda_http::Error>
where
    F: FnOnce(RequestContext, Request) -> Fut,
    Fut: Future<Output = Result<Reply, AppError>>,
{
    serve_with(request, handler, problem_response).await
}

/// [`serve`] for a handler whose errors are rendered by `render_error`
/// instead of as problems (the OAuth token endpoint answers RFC 6749 errors).
pub async fn serve_with<F, Fut, E>(
    request: Request,
    handler: F,
    render_error: fn(&E) -> Response<Body>,
) -> Result<Response<Body>, lambda_http::Error>
where
    F: FnOnce(RequestContext, Request) -> Fut,
    Fut: Future<Output = Result<Reply, E>>,
{
    let correlation_id = correlation_id_of(&request);
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        method = %request.method(),
        path = %request.raw_http_path(),
    );
    let (source_ip, user_agent) = caller_of(&request);
    let context = RequestContext { correlation_id: correlation_id.clone(), source_ip, user_agent };
    async move {
        let response = match handler(context, request).await {
            Ok(reply) => render(reply),
            Err(error) => render_error(&error),
        };
        tracing::info!(status = response.status().as_u16(), "request handled");
        let mut response = response;
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// The caller's correlation id when it is sane, otherwise a fresh one.
pub fn correlation_id_of(request: &Request) -> String {
    request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(crate::ids::new_id)
}

/// The raw body bytes, refusing oversized ones.
pub fn body_bytes(request: &Request) -> Result<&[u8], AppError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`; errors name the field and never echo values.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, AppError> {
    let bytes = body_bytes(request)?;
    if bytes.is_empty() {
        return Err(AppError::BadRequest { field: None, detail: "a JSON body is required".into() });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        describe_json_error(&path, error.inner())
    })?;
    // Trailing bytes after the document make it malformed too.
    deserializer.end().map_err(|error| describe_json_error("", &error))?;
    Ok(value)
}

/// A JSON body that may be omitted (then `{}`), for bodies whose fields are all optional.
pub fn optional_json_body(request: &Request) -> Result<serde_json::Value, AppError> {
    if body_bytes(request)?.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    json_body(request)
}

/// A JSON number as a non-negative integer, as JSON Schema reads integers:
/// `3.0` is the integer 3 (what an `integer` in openapi.yaml admits).
pub fn whole_number(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f)).map(|f| f as u64)
    })
}

/// Converts an already-parsed JSON value into `T`, with the same field-naming
/// errors as [`json_body`] (for handlers that also fingerprint the raw body).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        describe_json_error(&path, error.inner())
    })
}

/// A query-string parameter, if present.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    request.query_string_parameters_ref().and_then(|params| params.first(name)).map(str::to_owned)
}

fn describe_json_error(path: &str, error: &serde_json::Error) -> AppError {
    use serde_json::error::Category;
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AppError::BadRequest { field: None, detail: "malformed JSON body".into() }
        }
        Category::Data => {
            let named = backquoted(&message);
            // The path of a missing field is its parent; of an unknown one, itself.
            let field = if message.starts_with("missing field") {
                join_path(path, named.unwrap_or_default())
            } else {
                join_path(path, "")
            };
            // serde's "invalid type: string \"...\"" quotes the value, which may be
            // a secret: keep only what was expected.
            let detail = match message.find("expected ") {
                Some(at) if message.starts_with("invalid") => {
                    format!("{field}: invalid value, {}", &message[at..])
                }
                _ if message.starts_with("unknown field") => format!("{field}: unknown field"),
                _ if message.starts_with("missing field") => format!("{field}: is required"),
                _ => format!("{field}: {message}"),
            };
            AppError::BadRequest { field: Some(field), detail }
        }
    }
}

fn backquoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join_path(path: &str, name: &str) -> String {
    match (path, name) {
        ("." | "", "") => "body".to_owned(),
        ("." | "", name) => name.to_owned(),
        (path, "") => path.to_owned(),
        (path, name) => format!("{path}.{name}"),
    }
}

/// A path parameter (`/v1/payments/{id}`), required.
pub fn path_param(request: &Request, name: &'static str) -> Result<String, AppError> {
    request
        .path_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_owned)
        .ok_or_else(|| AppError::bad_request(name, format!("{name}: path parameter is required")))
}

/// A header as text, if present and printable.
pub fn header_text<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn render(reply: Reply) -> Response<Body> {
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    let response = match reply.body {
        Some(body) => {
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::Text(body.to_string()))
        }
        None => builder.body(Body::Empty),
    };
    response.unwrap_or_else(|_| fallback_internal())
}

/// Renders an error as a problem document and logs it (the message only; it
/// never contains request values).
pub fn problem_response(error: &AppError) -> Response<Body> {
    let (status, body) = problem(error);
    let mut builder = Response::builder().status(status).header(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE);
    match error {
        AppError::InProgress { retry_after_seconds } => {
            builder = builder.header(header::RETRY_AFTER, retry_after_seconds.to_string());
        }
        AppError::TooManyRequests { retry_after_seconds } => {
            builder = builder.header(header::RETRY_AFTER, retry_after_seconds.to_string());
        }
        AppError::Unavailable(_) => builder = builder.header(header::RETRY_AFTER, "1"),
        AppError::Unauthorized(_) => builder = builder.header(header::WWW_AUTHENTICATE, "Bearer"),
        _ => {}
    }
    builder.body(Body::Text(body.to_string())).unwrap_or_else(|_| fallback_internal())
}

/// An error's status and problem document (logged as [`problem_response`]
/// says), for answers that are not HTTP responses (WebSocket frames).
pub fn problem(error: &AppError) -> (StatusCode, serde_json::Value) {
    let (status, kind, title) = classify(error);
    let mut body = serde_json::json!({
        "type": format!("urn:caas:problem:{kind}"),
        "title": title,
        "status": status.as_u16(),
    });
    let public_detail = match error {
        AppError::Internal(_) | AppError::Config(_) => "an unexpected error occurred".to_owned(),
        other => other.to_string(),
    };
    body["detail"] = public_detail.into();
    if let AppError::BadRequest { field: Some(field), .. } = error {
        body["field"] = field.clone().into();
    }
    if status.is_server_error() {
        tracing::error!(error = %error, status = status.as_u16(), "request failed");
    } else {
        tracing::info!(problem = kind, status = status.as_u16(), "request rejected");
    }
    (status, body)
}

fn classify(error: &AppError) -> (StatusCode, &'static str, &'static str) {
    match error {
        AppError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "validation", "Invalid request"),
        AppError::PayloadTooLarge { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large")
        }
        AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
        AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
        AppError::Unprocessable(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", "Unprocessable request")
        }
        AppError::InProgress { .. } => (StatusCode::CONFLICT, "in-progress", "Request in progress"),
        AppError::TooManyRequests { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
        }
        AppError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service temporarily unavailable")
        }
        AppError::Config(_) | AppError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
        }
    }
}

fn fallback_internal() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
        nested: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn request(body: &str) -> Request {
        http::Request::builder().body(Body::Text(body.to_owned())).unwrap()
    }

    fn field_of(body: &str) -> (Option<String>, String) {
        match json_body::<Login>(&request(body)) {
            Err(AppError::BadRequest { field, detail }) => (field, detail),
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_without_echoing_values() {
        assert_eq!(field_of(r#"{"email":"a@b.c"}"#).0.as_deref(), Some("password"));
        let (field, detail) = field_of(r#"{"email":"a@b.c","password":12345678901234}"#);
        assert_eq!(field.as_deref(), Some("password"));
        assert!(!detail.contains("12345678901234"), "{detail}");
        let (field, detail) = field_of(r#"{"email":"a@b.c","password":"x","nested":{"count":"s3cret"}}"#);
        assert_eq!(field.as_deref(), Some("nested.count"));
        assert!(!detail.contains("s3cret"), "{detail}");
        assert_eq!(field_of(r#"{"email":"a","password":"b","extra":1}"#).0.as_deref(), Some("extra"));
        assert_eq!(field_of(r#"{"email":"a","password":"b"} trailing"#).0, None);
        assert_eq!(field_of("{not json").0, None);
        assert_eq!(field_of("[]").0.as_deref(), Some("body"));
    }

    #[test]
    fn oversized_and_empty_bodies_are_refused() {
        let big = format!(r#"{{"email":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert!(matches!(json_body::<Login>(&request(&big)), Err(AppError::PayloadTooLarge { .. })));
        assert!(matches!(json_body::<Login>(&request("")), Err(AppError::BadRequest { field: None, .. })));
    }

    #[test]
    fn problems_are_problem_json_and_hide_internals() {
        let response = problem_response(&AppError::Internal("table xyz exploded".into()));
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        let Body::Text(text) = response.body() else { panic!("text body") };
        assert!(!text.contains("exploded"));
        let response = problem_response(&AppError::InProgress { retry_after_seconds: 2 });
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
