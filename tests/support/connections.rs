//! A stand-in for the WebSocket API's `@connections` management endpoint on a
//! real loopback listener: `POST /<stage>/@connections/<id>` records the
//! frame for that connection (200), answers `410 Gone` for a connection
//! marked gone and `500` for one marked failing, as API Gateway would. The
//! deliver function reaches it through the real SDK client.

use caas_local::http::{self as web, Request};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const STAGE: &str = "live";

#[derive(Default)]
struct State {
    frames: BTreeMap<String, Vec<serde_json::Value>>,
    gone: BTreeSet<String>,
    failing: BTreeSet<String>,
    /// Every push, in arrival order: (connection id, status answered).
    pushes: Vec<(String, u16)>,
}

pub struct ConnectionsEndpoint {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl ConnectionsEndpoint {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let shared = state.clone();
        let server = tokio::spawn(web::serve(listener, move |request| {
            let state = shared.clone();
            async move { handle(&state, request) }
        }));
        Self { addr, state, server }
    }

    /// The stage URL (the function's `CONNECTIONS_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://{}/{STAGE}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// API Gateway no longer knows `connection_id`: 410.
    pub fn gone(&self, connection_id: &str) {
        self.state().gone.insert(connection_id.to_owned());
    }

    /// Pushes to `connection_id` fail (500) until [`recover`](Self::recover).
    pub fn failing(&self, connection_id: &str) {
        self.state().failing.insert(connection_id.to_owned());
    }

    pub fn recover(&self, connection_id: &str) {
        self.state().failing.remove(connection_id);
    }

    /// The frames delivered to each connection (answered 200), in order.
    pub fn frames(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        self.state().frames.clone()
    }

    /// Every push since the last [`take_pushes`](Self::take_pushes).
    pub fn take_pushes(&self) -> Vec<(String, u16)> {
        std::mem::take(&mut self.state().pushes)
    }
}

impl Drop for ConnectionsEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn handle(state: &Mutex<State>, request: Request) -> web::Response {
    let path = request.uri.path().to_owned();
    let prefix = format!("/{STAGE}/@connections/");
    let Some(id) = path.strip_prefix(&prefix).filter(|id| !id.is_empty() && !id.contains('/')) else {
        return web::json(http::StatusCode::NOT_FOUND, &serde_json::json!({ "message": "Not Found" }));
    };
    if request.method != http::Method::POST {
        return web::json(
            http::StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({ "message": "POST only" }),
        );
    }
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let error = |status: http::StatusCode, kind: &str| {
        web::response(
            status,
            &[("content-type", "application/json"), ("x-amzn-errortype", kind)],
            serde_json::json!({ "message": kind }).to_string(),
        )
    };
    let (status, response) = if state.gone.contains(id) {
        (410, error(http::StatusCode::GONE, "GoneException"))
    } else if state.failing.contains(id) {
        (500, error(http::StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"))
    } else {
        let frame = serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
        state.frames.entry(id.to_owned()).or_default().push(frame);
        (200, web::response(http::StatusCode::OK, &[], ""))
    };
    state.pushes.push((id.to_owned(), status));
    response
}
