//! The WebSocket API (API Gateway, `AWS::ApiGatewayV2::Api` in
//! template.yaml): `$connect` authenticates the access token, `$disconnect`
//! forgets the connection, `send` posts a message as the HTTP route does.
//!
//! - `$connect`: the access token in the query (`?access_token=`) or as
//!   `Authorization: Bearer`; without a valid one the answer is 401 and API
//!   Gateway refuses the connection. Machine clients 403 (chat is between
//!   people). Otherwise one PutItem records the connection
//!   ([`crate::store::connections`]) with the token's verified claims, for two
//!   hours (API Gateway's longest connection).
//! - `send`: `{"action": "send", "conversation_id", "client_message_id",
//!   "body"}`. The connection's item (one GetItem) names the principal, then
//!   the post is [`super::messages::post`] itself: the same read and
//!   transaction, the same idempotency (the same client message id over HTTP
//!   and WebSocket is the same request), the same checks on stored state (the
//!   user still active, still a participant), so a connection older than its
//!   token posts nothing its user may no longer post. The answer frame is
//!   `{"type": "message.posted", "status", "replayed", "message"}` or
//!   `{"type": "error", "status", "problem"}`.
//! - `$disconnect`: one DeleteItem.

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::Principal;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::store::connections::{self as store, ConnectionRecord};
use crate::tenant::TenantId;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde::Deserialize;
use serde_json::{Value, json};

/// API Gateway closes a WebSocket connection after two hours.
pub const CONNECTION_TTL_SECONDS: i64 = 7200;

/// The `send` route's message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendFrame {
    #[allow(dead_code)]
    action: String,
    conversation_id: String,
    client_message_id: String,
    body: String,
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Result<String, AppError> {
    event
        .request_context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| AppError::BadRequest { field: None, detail: "no connection id".into() })
}

/// The request context of a WebSocket event (its request id is the correlation id).
fn context(event: &ApiGatewayWebsocketProxyRequest) -> RequestContext {
    let correlation_id = event.request_context.request_id.clone().unwrap_or_else(crate::ids::new_id);
    let mut ctx = RequestContext::internal(&correlation_id);
    ctx.source_ip = event.request_context.identity.source_ip.clone().unwrap_or_else(|| "unknown".into());
    ctx
}

/// The access token of a `$connect`: `?access_token=` or `Authorization: Bearer`.
fn token_of(event: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    if let Some(token) = event.query_string_parameters.first("access_token") {
        return Some(token.to_owned());
    }
    let header = event.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// `$connect`: authenticates, then records the connection.
pub async fn connect(app: &App, event: &ApiGatewayWebsocketProxyRequest) -> Result<(), AppError> {
    let connection_id = connection_id(event)?;
    let token = token_of(event).ok_or(AppError::Unauthorized("an access token is required"))?;
    let who = crate::auth::service::authenticate_token(app, &token).await?;
    super::require_person(&who)?;
    let now = app.now();
    let record = ConnectionRecord {
        connection_id: connection_id.clone(),
        tenant_id: who.tenant.to_string(),
        user_id: who.principal.id.clone(),
        connected_at: rfc3339(now),
        claims: who.claims,
        expires_at: now.unix_timestamp() + CONNECTION_TTL_SECONDS,
    };
    store::put(&app.clients.dynamodb, &app.config.table_name, &record).await?;
    tracing::info!(tenant = %record.tenant_id, %connection_id, "connected");
    Ok(())
}

/// `$disconnect`: forgets the connection.
pub async fn disconnect(app: &App, event: &ApiGatewayWebsocketProxyRequest) -> Result<(), AppError> {
    let connection_id = connection_id(event)?;
    store::delete(&app.clients.dynamodb, &app.config.table_name, &connection_id).await?;
    tracing::info!(%connection_id, "disconnected");
    Ok(())
}

/// The principal a recorded connection authenticated as.
fn authenticated(record: ConnectionRecord) -> Result<Authenticated, AppError> {
    let tenant =
        TenantId::parse(&record.tenant_id).map_err(|e| AppError::internal("connection tenant", e))?;
    let claims = record.claims;
    let principal =
        Principal::from_claims(&claims.sub, tenant.clone(), &claims.roles, claims.client_id.as_deref());
    Ok(Authenticated { tenant, user_id: claims.sub.clone(), claims, principal })
}

/// `send`: posts a message as the connection's principal.
pub async fn send(
    app: &App,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<crate::idempotency::Outcome, AppError> {
    let connection_id = connection_id(event)?;
    let (conversation_id, post) = parse_send(event.body.as_deref().unwrap_or_default())?;
    let record = store::find(
        &app.clients.dynamodb,
        &app.config.table_name,
        &connection_id,
        app.now().unix_timestamp(),
    )
    .await?
    .ok_or(AppError::Unauthorized("the connection is not authenticated; connect again"))?;
    let who = authenticated(record)?;
    super::messages::post(app, &context(event), &who, &conversation_id, post).await
}

/// A `send` frame: the conversation and the post's body as the HTTP route
/// takes it (so both fingerprint alike); bad frames are 400s naming the field.
pub fn parse_send(raw: &str) -> Result<(String, Value), AppError> {
    if raw.len() > crate::http::MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge { limit: crate::http::MAX_BODY_BYTES });
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|_| AppError::BadRequest { field: None, detail: "malformed JSON message".into() })?;
    let frame: SendFrame = crate::http::from_value(value)?;
    let post = json!({ "client_message_id": frame.client_message_id, "body": frame.body });
    Ok((frame.conversation_id, post))
}

/// A route's answer: a status and a JSON frame.
pub fn response(status: u16, frame: Option<Value>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = frame.map(|frame| aws_lambda_events::encodings::Body::Text(frame.to_string()));
    response
}

/// An error as the route's answer: its status and `{"type": "error", "status", "problem"}`.
pub fn error_response(error: &AppError) -> ApiGatewayProxyResponse {
    let (status, problem) = crate::http::problem(error);
    response(status.as_u16(), Some(json!({ "type": "error", "status": status.as_u16(), "problem": problem })))
}

/// The answer to a `send`.
pub fn posted_response(outcome: crate::idempotency::Outcome) -> ApiGatewayProxyResponse {
    let frame = json!({
        "type": "message.posted",
        "status": outcome.status,
        "replayed": outcome.replayed,
        "message": outcome.body,
    });
    response(outcome.status, Some(frame))
}

/// Runs one WebSocket route: the correlation id's span, the answer or the error.
pub async fn serve<F, Fut>(event: ApiGatewayWebsocketProxyRequest, route: F) -> ApiGatewayProxyResponse
where
    F: FnOnce(ApiGatewayWebsocketProxyRequest) -> Fut,
    Fut: std::future::Future<Output = Result<ApiGatewayProxyResponse, AppError>>,
{
    use tracing::Instrument;
    let ctx = context(&event);
    let span = tracing::info_span!(
        "websocket",
        correlation_id = %ctx.correlation_id,
        route = %event.request_context.route_key.clone().unwrap_or_default(),
    );
    async move { route(event).await.unwrap_or_else(|error| error_response(&error)) }.instrument(span).await
}
