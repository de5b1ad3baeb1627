//! The Runtime API one instance talks to: it hands out the next invocation and takes
//! the instance's response, error or init error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Reply;
use crate::http::{self as web, Request, Response};

const PREFIX: &str = "/2018-06-01/runtime";

/// One invocation on its way to the instance, and where its reply goes.
pub(super) struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Milliseconds since the epoch.
    pub deadline_ms: u128,
    pub reply: oneshot::Sender<Reply>,
}

/// The instance's side of the API: the invocations to hand out, those in flight, and
/// the init error it reported.
pub(super) struct RuntimeState {
    arn: String,
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    init_error: Mutex<Option<String>>,
}

impl RuntimeState {
    pub fn new(arn: String, invocations: mpsc::Receiver<Invocation>) -> Self {
        RuntimeState {
            arn,
            next: tokio::sync::Mutex::new(invocations),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        }
    }

    /// What the instance posted to `/init/error`, if anything.
    pub fn init_error(&self) -> Option<String> {
        self.init_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Serves the Runtime API on `listener` until the task is aborted.
pub(super) fn serve(listener: TcpListener, state: Arc<RuntimeState>) -> JoinHandle<()> {
    tokio::spawn(web::serve(listener, move |request| {
        let state = state.clone();
        async move { runtime_api(&state, request).await }
    }))
}

async fn runtime_api(state: &RuntimeState, request: Request) -> Response {
    let path = request.uri.path();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return web::text(StatusCode::NOT_FOUND, "not a Runtime API path");
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["invocation", "next"]) => next(state).await,
        ("POST", ["invocation", id, "response"]) => settle(state, id, Reply::Success(request.body)),
        ("POST", ["invocation", id, "error"]) => {
            let error_type = request
                .headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unhandled")
                .to_owned();
            let payload = if request.body.is_empty() {
                Bytes::from(serde_json::json!({ "errorType": error_type }).to_string())
            } else {
                request.body
            };
            settle(state, id, Reply::Failure { error_type, payload })
        }
        ("POST", ["init", "error"]) => {
            let text = String::from_utf8_lossy(&request.body).into_owned();
            *state.init_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            accepted()
        }
        _ => web::text(StatusCode::NOT_FOUND, "unknown Runtime API path"),
    }
}

async fn next(state: &RuntimeState) -> Response {
    let invocation = state.next.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return web::text(StatusCode::GONE, "this instance is shutting down");
    };
    state
        .in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(invocation.request_id.clone(), invocation.reply);
    let deadline = invocation.deadline_ms.to_string();
    let trace = format!(
        "Root=1-{}-{};Sampled=0",
        short_hex_time(),
        uuid::Uuid::new_v4().simple().to_string().get(..24).unwrap_or_default()
    );
    web::response(
        StatusCode::OK,
        &[
            ("content-type", "application/json"),
            ("lambda-runtime-aws-request-id", &invocation.request_id),
            ("lambda-runtime-deadline-ms", &deadline),
            ("lambda-runtime-invoked-function-arn", &state.arn),
            ("lambda-runtime-trace-id", &trace),
        ],
        invocation.payload,
    )
}

fn settle(state: &RuntimeState, request_id: &str, reply: Reply) -> Response {
    let waiting = state.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(request_id);
    match waiting {
        Some(sender) => {
            // The caller may have given up (timeout); nothing else to do then.
            let _ = sender.send(reply);
            accepted()
        }
        None => web::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({
                "errorType": "InvalidRequestID",
                "errorMessage": format!("no invocation {request_id} is in flight"),
            }),
        ),
    }
}

fn accepted() -> Response {
    web::json(StatusCode::ACCEPTED, &serde_json::json!({ "status": "OK" }))
}

fn short_hex_time() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    format!("{secs:08x}")
}
