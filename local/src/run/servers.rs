//! The run's servers: the HTTP API, the Lambda Invoke API and the WebSocket API (with
//! its `@connections` management endpoint).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{RunError, Session, io};
use crate::functions::Function;
use crate::http_api::RouteTable;
use crate::invoke_api::InvokeApi;
use crate::schedule::Schedule;
use crate::websocket_api::WebSocketServer;

pub(super) struct Servers {
    pub api_url: String,
    pub invoke_url: String,
    pub invoke_api: Arc<InvokeApi>,
    /// The WebSocket API's URL (`ws://HOST:PORT/{stage}`) and server, when the template has one.
    pub websocket: Option<(String, Arc<WebSocketServer>)>,
    tasks: JoinSet<()>,
}

/// The WebSocket API's listener and its base URL (`http://HOST:PORT`), when the
/// template has a WebSocket API.
pub(super) async fn bind_websocket(session: &Session<'_>) -> Result<Option<(TcpListener, String)>, RunError> {
    if session.template.websocket_apis().is_empty() {
        return Ok(None);
    }
    let options = session.options;
    let listener = bind(options.host, options.ws_port, "the WebSocket API").await?;
    let url = url_of(&listener)?;
    Ok(Some((listener, url)))
}

impl Servers {
    /// Binds the ports (the WebSocket API's is bound already) and serves until
    /// [`shutdown`](Self::shutdown).
    pub async fn start(
        session: &Session<'_>,
        functions: &BTreeMap<String, Arc<Function>>,
        schedules: Vec<Schedule>,
        websocket: Option<(TcpListener, String)>,
    ) -> Result<Servers, RunError> {
        let options = session.options;
        let routes = RouteTable::new(session.template.http_routes());
        let api_listener = bind(options.host, options.api_port, "the HTTP API").await?;
        let invoke_listener = bind(options.host, options.invoke_port, "the Invoke API").await?;
        let api_url = url_of(&api_listener)?;
        let invoke_url = url_of(&invoke_listener)?;
        let invoke_api = Arc::new(InvokeApi {
            functions: functions.clone(),
            routes: routes.clone(),
            schedules,
            background: Mutex::new(JoinSet::new()),
        });
        let mut tasks = JoinSet::new();
        let (all, routes) = (Arc::new(functions.clone()), Arc::new(routes));
        tasks.spawn(crate::http::serve(api_listener, move |request| {
            let (functions, routes) = (all.clone(), routes.clone());
            async move { crate::http_api::handle(&routes, &functions, request).await }
        }));
        let api = invoke_api.clone();
        tasks.spawn(crate::http::serve(invoke_listener, move |request| {
            let api = api.clone();
            async move { api.handle(request).await }
        }));
        let websocket = websocket.and_then(|(listener, base)| {
            // One WebSocket API per stack is served (the template has one).
            let api = session.template.websocket_apis().first()?.clone();
            let url = format!("{}/{}", base.replacen("http://", "ws://", 1), api.stage);
            let server = Arc::new(WebSocketServer::new(api, functions.clone()));
            tasks.spawn(server.clone().serve(listener));
            Some((url, server))
        });
        Ok(Servers { api_url, invoke_url, invoke_api, websocket, tasks })
    }

    /// Stops both servers, then the asynchronous invocations still running.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        let background = &self.invoke_api.background;
        let mut background = std::mem::take(&mut *background.lock().unwrap_or_else(|p| p.into_inner()));
        background.shutdown().await;
    }
}

async fn bind(host: IpAddr, port: u16, what: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind((host, port)).await.map_err(io(format!("binding {what} to {host}:{port}")))
}

fn url_of(listener: &TcpListener) -> Result<String, RunError> {
    let addr = listener.local_addr().map_err(io("reading a bound address"))?;
    Ok(format!("http://{addr}"))
}
