//! The template's WebSocket API served like API Gateway serves one, on its own port:
//! clients connect to `ws://HOST:PORT/{stage}`; `$connect`'s function decides whether
//! the handshake completes (a 2xx answer) or is refused with the function's status
//! and body; each frame is routed by the API's `RouteSelectionExpression`
//! (`$request.body.action`: the frame's JSON `action`, else `$default`, else a
//! `Forbidden` frame) to its route's function, whose body comes back as a frame when
//! the route has a route response; a close (either side's) invokes `$disconnect`.
//! The events are API Gateway's ([`event`]).
//!
//! The same port serves the API Gateway Management API the functions push with
//! (`aws-sdk-apigatewaymanagement` with the endpoint `http://HOST:PORT/{stage}`):
//! `POST /{stage}/@connections/{id}` sends the body as a frame, `GET` describes the
//! connection, `DELETE` closes it; an unknown or closed connection is
//! `410 GoneException`.

mod event;
mod management;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::functions::Function;
use crate::http::{self as web, Response};
use crate::runtime_api::Reply;
use crate::stack::{api_id, execute_api_domain};
use crate::template::{WebSocketApi, WebSocketRoute};
use event::ConnectionContext;

/// API Gateway's largest frame (and `PostToConnection` payload): 128 KiB.
const MAX_FRAME_BYTES: usize = 128 * 1024;

/// One WebSocket API with its live connections.
pub struct WebSocketServer {
    api: WebSocketApi,
    functions: std::collections::BTreeMap<String, Arc<Function>>,
    connections: Mutex<HashMap<String, Connection>>,
}

/// A live connection as the server tracks it.
struct Connection {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    context: ConnectionContext,
    /// Epoch milliseconds of the last frame from the client.
    last_active_at: i64,
    /// A `DeleteConnection` asked for the close: gone for the Management API already.
    closing: bool,
}

enum Outgoing {
    Frame(Message),
    /// `DeleteConnection`: close from the server's side.
    Close,
}

/// Rewrites the URLs of the template's WebSocket APIs (`https://{api}.execute-api...`,
/// `wss://...`, as `!Ref` builds them in a function's environment) to `local`, the
/// base URL of the local server (`http://127.0.0.1:3002`).
pub fn local_urls(value: &str, apis: &[WebSocketApi], region: &str, local: &str) -> String {
    let host = local.split_once("://").map_or(local, |(_, host)| host);
    let mut value = value.to_owned();
    for api in apis {
        let domain = execute_api_domain(&api.logical_id, region);
        value = value
            .replace(&format!("https://{domain}"), &format!("http://{host}"))
            .replace(&format!("wss://{domain}"), &format!("ws://{host}"));
    }
    value
}

impl WebSocketServer {
    pub fn new(api: WebSocketApi, functions: std::collections::BTreeMap<String, Arc<Function>>) -> Self {
        WebSocketServer { api, functions, connections: Mutex::new(HashMap::new()) }
    }

    pub fn api(&self) -> &WebSocketApi {
        &self.api
    }

    /// The connections open now.
    pub fn connection_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts connections until the task running it is dropped or aborted (which
    /// also drops every open connection, without `$disconnect`: the stack is stopping).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tasks.spawn(self.clone().connection(stream, peer));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }

    /// One TCP connection: HTTP/1.1 requests (management calls), or a handshake after
    /// which the same task runs the WebSocket.
    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let upgrade: Arc<Mutex<Option<Accepted>>> = Arc::default();
        let (server, slot) = (self.clone(), upgrade.clone());
        let service = hyper::service::service_fn(move |request| {
            let (server, slot) = (server.clone(), slot.clone());
            async move { Ok::<_, Infallible>(server.request(request, peer, &slot).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        let accepted = upgrade.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Ok(()), Some(accepted)) = (served, accepted) {
            self.run(accepted).await;
        }
    }

    async fn request(
        &self,
        mut request: hyper::Request<Incoming>,
        peer: SocketAddr,
        slot: &Mutex<Option<Accepted>>,
    ) -> Response {
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [stage, "@connections", id] => {
                let method = request.method().clone();
                let body = match request.into_body().collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return web::text(StatusCode::BAD_REQUEST, "could not read the request body"),
                };
                management::handle(self, &method, stage, id, body)
            }
            [stage] | [stage, ""] if *stage == self.api.stage => {
                let upgrade = hyper::upgrade::on(&mut request);
                let (response, accepted) = self.handshake(&request, peer).await;
                if let Some(connection) = accepted {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Accepted { upgrade, id: connection.0, outgoing: connection.1 });
                }
                response
            }
            _ => forbidden(),
        }
    }

    /// The opening handshake: `$connect`'s answer decides. On success the connection is
    /// registered (frames pushed before the upgrade completes wait for it).
    async fn handshake(
        &self,
        request: &hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> (Response, Option<(String, mpsc::UnboundedReceiver<Outgoing>)>) {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let is_upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        let (Some(key), true) = (header("sec-websocket-key"), is_upgrade) else {
            return (
                web::json(StatusCode::UPGRADE_REQUIRED, &json!({ "message": "Upgrade Required" })),
                None,
            );
        };
        if header("sec-websocket-version") != Some("13") {
            return (web::json(StatusCode::BAD_REQUEST, &json!({ "message": "Bad Request" })), None);
        }
        let accept_key = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let now = time::OffsetDateTime::now_utc();
        let context = ConnectionContext {
            api_id: api_id(&self.api.logical_id),
            stage: self.api.stage.clone(),
            domain_name: header("host").unwrap_or("localhost").to_owned(),
            connection_id: new_connection_id(),
            connected_at: event::epoch_millis(now),
            source_ip: peer.ip().to_string(),
            user_agent: header("user-agent").unwrap_or_default().to_owned(),
        };
        let mut protocol = None;
        if let Some(route) = self.api.route("$connect") {
            let request_id = uuid::Uuid::new_v4().to_string();
            let query = request.uri().query().unwrap_or_default();
            let event = event::connect(&context, request.headers(), query, &request_id);
            let reply = self.invoke(route, &event).await;
            let Reply::Success(payload) = reply else {
                return (internal_error(), None);
            };
            let answer: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            let status = answer.get("statusCode").and_then(Value::as_u64).unwrap_or(200);
            if !(200..300).contains(&status) {
                return (crate::http_api::render(&payload), None);
            }
            protocol = answer
                .get("headers")
                .and_then(|h| h.as_object())
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol")))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = context.connection_id.clone();
        let last_active_at = context.connected_at;
        self.lock()
            .insert(id.clone(), Connection { outgoing: sender, context, last_active_at, closing: false });
        let mut headers = vec![("upgrade", "websocket"), ("connection", "Upgrade")];
        headers.push(("sec-websocket-accept", &accept_key));
        if let Some(protocol) = &protocol {
            headers.push(("sec-websocket-protocol", protocol));
        }
        (web::response(StatusCode::SWITCHING_PROTOCOLS, &headers, Bytes::new()), Some((id, receiver)))
    }

    /// A registered connection, from the upgrade to `$disconnect`.
    async fn run(self: Arc<Self>, accepted: Accepted) {
        let Accepted { upgrade, id, mut outgoing } = accepted;
        let socket = match upgrade.await {
            Ok(upgraded) => {
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await
            }
            Err(_) => {
                self.closed(&id, 1006, "the upgrade failed").await;
                return;
            }
        };
        let (mut sink, mut frames) = socket.split();
        let mut invocations = JoinSet::new();
        let (status, reason) = loop {
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let server = self.clone();
                        let id = id.clone();
                        invocations.spawn(async move { server.message(&id, text.as_bytes(), false).await });
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        let server = self.clone();
                        let id = id.clone();
                        invocations.spawn(async move { server.message(&id, &bytes, true).await });
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) =
                            frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                        let _ = sink.close().await;
                        break (code, if reason.is_empty() { "Connection closed by the client".to_owned() } else { reason });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break (1006, "Connection lost".to_owned()),
                },
                out = outgoing.recv() => match out {
                    Some(Outgoing::Frame(message)) => {
                        if sink.send(message).await.is_err() {
                            break (1006, "Connection lost".to_owned());
                        }
                    }
                    Some(Outgoing::Close) | None => {
                        let close = CloseFrame { code: CloseCode::Normal, reason: "Goodbye".into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        let _ = sink.close().await;
                        break (1000, "Connection closed by DeleteConnection".to_owned());
                    }
                },
                Some(_) = invocations.join_next(), if !invocations.is_empty() => {}
            }
        };
        // Frames already received still reach their functions.
        while invocations.join_next().await.is_some() {}
        self.closed(&id, status, &reason).await;
    }

    /// Forgets the connection and invokes `$disconnect`.
    async fn closed(&self, id: &str, status: u16, reason: &str) {
        let Some(Connection { context, .. }) = self.lock().remove(id) else {
            return;
        };
        if let Some(route) = self.api.route("$disconnect") {
            let request_id = uuid::Uuid::new_v4().to_string();
            let event = event::disconnect(&context, status, reason, &request_id);
            self.invoke(route, &event).await;
        }
    }

    /// One frame from the client: its route's function, and the answer frame when the
    /// route has a route response.
    async fn message(&self, id: &str, frame: &[u8], binary: bool) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let context = {
            let mut connections = self.lock();
            let Some(connection) = connections.get_mut(id) else {
                return;
            };
            connection.last_active_at = event::epoch_millis(time::OffsetDateTime::now_utc());
            connection.context.clone()
        };
        let route = if frame.len() > MAX_FRAME_BYTES { None } else { select_route(&self.api, frame) };
        let Some(route) = route else {
            let forbidden = json!({ "message": "Forbidden", "connectionId": id, "requestId": request_id });
            self.push(id, Message::text(forbidden.to_string()));
            return;
        };
        let message_id = uuid::Uuid::new_v4().simple().to_string();
        let event = event::message(&context, &route.route_key, frame, binary, &request_id, &message_id);
        match self.invoke(route, &event).await {
            Reply::Success(payload) if route.responds => {
                if let Some(message) = answer_frame(&payload) {
                    self.push(id, message);
                }
            }
            Reply::Success(_) => {}
            Reply::Failure { .. } => {
                let error = json!({ "message": "Internal server error", "connectionId": id, "requestId": request_id });
                self.push(id, Message::text(error.to_string()));
            }
        }
    }

    async fn invoke(&self, route: &WebSocketRoute, event: &Value) -> Reply {
        let Some(function) = self.functions.get(&route.function_logical_id) else {
            return Reply::failure("ResourceNotFoundException", "the route's function is not running");
        };
        let payload = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        let trigger = format!("ws {}", route.route_key);
        let invoked = function
            .invoke(payload, &trigger, |reply| match reply {
                Reply::Success(payload) => match serde_json::from_slice::<Value>(payload) {
                    Ok(v) => v.get("statusCode").and_then(Value::as_u64).unwrap_or(200).to_string(),
                    Err(_) => "502 bad reply".to_owned(),
                },
                Reply::Failure { error_type, .. } => format!("500 {error_type}"),
            })
            .await;
        invoked.reply
    }

    /// Queues a frame for a connection; false when it is not (or no longer) open.
    fn push(&self, id: &str, message: Message) -> bool {
        self.lock()
            .get(id)
            .filter(|c| !c.closing)
            .is_some_and(|c| c.outgoing.send(Outgoing::Frame(message)).is_ok())
    }
}

/// A completed handshake waiting for hyper to hand over the connection.
struct Accepted {
    upgrade: hyper::upgrade::OnUpgrade,
    id: String,
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
}

/// The route a frame goes to: the value the selection expression names, when it is
/// the key of a route (other than `$connect` and `$disconnect`), else `$default`.
fn select_route<'a>(api: &'a WebSocketApi, frame: &[u8]) -> Option<&'a WebSocketRoute> {
    let expression = api.route_selection_expression.trim();
    let path = expression
        .strip_prefix("$request.body.")
        .or_else(|| expression.strip_prefix("${request.body.").and_then(|p| p.strip_suffix('}')));
    let selected = path.and_then(|path| {
        let body: Value = serde_json::from_slice(frame).ok()?;
        let value = path.split('.').try_fold(&body, |v, key| v.get(key))?;
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    });
    selected
        .filter(|key| key != "$connect" && key != "$disconnect")
        .and_then(|key| api.route(&key))
        .or_else(|| api.route("$default"))
}

/// The integration's answer as the frame API Gateway sends back: its `body` (base64
/// decoded when so marked); none without a body.
fn answer_frame(payload: &[u8]) -> Option<Message> {
    let answer: Value = serde_json::from_slice(payload).ok()?;
    let body = match answer.get("statusCode") {
        Some(_) => answer.get("body")?.as_str()?.to_owned(),
        None => answer.to_string(),
    };
    if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
        return Some(Message::binary(bytes));
    }
    Some(Message::text(body))
}

/// API Gateway's connection ids: 12 random bytes in base64 (URL-safe here).
fn new_connection_id() -> String {
    let random = uuid::Uuid::new_v4();
    base64::engine::general_purpose::URL_SAFE.encode(&random.as_bytes()[..12])
}

fn forbidden() -> Response {
    web::json(StatusCode::FORBIDDEN, &json!({ "message": "Forbidden" }))
}

fn internal_error() -> Response {
    web::json(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "message": "Internal server error" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> WebSocketApi {
        let route = |key: &str, function: &str| WebSocketRoute {
            route_key: key.into(),
            function_logical_id: function.into(),
            responds: false,
        };
        WebSocketApi {
            logical_id: "WebSocketApi".into(),
            route_selection_expression: "$request.body.action".into(),
            stage: "live".into(),
            routes: vec![route("$connect", "Connect"), route("send", "Send"), route("$default", "Default")],
        }
    }

    #[test]
    fn frames_are_routed_by_the_selection_expression() {
        let api = api();
        let routed =
            |frame: &str| select_route(&api, frame.as_bytes()).map(|r| r.function_logical_id.clone());
        assert_eq!(routed(r#"{"action":"send","body":"x"}"#).as_deref(), Some("Send"));
        assert_eq!(routed(r#"{"action":"other"}"#).as_deref(), Some("Default"));
        assert_eq!(routed(r#"{"action":"$connect"}"#).as_deref(), Some("Default"));
        assert_eq!(routed("not json").as_deref(), Some("Default"));
        let mut without_default = api.clone();
        without_default.routes.retain(|r| r.route_key != "$default");
        assert!(select_route(&without_default, b"{}").is_none());
        let mut nested = api.clone();
        nested.route_selection_expression = "${request.body.meta.kind}".into();
        assert_eq!(
            select_route(&nested, br#"{"meta":{"kind":"send"}}"#).map(|r| r.function_logical_id.as_str()),
            Some("Send")
        );
    }

    #[test]
    fn answers_become_frames() {
        let text = answer_frame(br#"{"statusCode":201,"body":"{\"ok\":true}"}"#);
        assert_eq!(text, Some(Message::text(r#"{"ok":true}"#)));
        assert_eq!(answer_frame(br#"{"statusCode":200}"#), None);
        let binary = answer_frame(br#"{"statusCode":200,"body":"/w==","isBase64Encoded":true}"#);
        assert_eq!(binary, Some(Message::binary(vec![0xff])));
    }

    #[test]
    fn execute_api_urls_point_at_the_local_server() {
        let apis = vec![api()];
        let url = format!("https://{}/live", execute_api_domain("WebSocketApi", "eu-west-1"));
        assert_eq!(
            local_urls(&url, &apis, "eu-west-1", "http://127.0.0.1:3002"),
            "http://127.0.0.1:3002/live"
        );
        let wss = format!("wss://{}/live", execute_api_domain("WebSocketApi", "eu-west-1"));
        assert_eq!(local_urls(&wss, &apis, "eu-west-1", "http://127.0.0.1:3002"), "ws://127.0.0.1:3002/live");
        assert_eq!(local_urls("unrelated", &apis, "eu-west-1", "http://x"), "unrelated");
    }

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert_ne!(id, new_connection_id());
    }
}
