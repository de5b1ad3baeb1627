//! The template's HTTP API on a real loopback listener, served in process:
//! each request is matched to its route and turned into the payload 2.0
//! event API Gateway would send (the local stack's own conversion), handed
//! to the function's handler with a warm App of this test's stack (its
//! clock included), and its answer written back. For tests that drive the
//! API with an ordinary HTTP client library.

use crate::TestStack;
use crate::api::try_dispatch;
use caas::App;
use caas_local::http::{self as web, Request};
use caas_local::http_api::{RouteTable, request_event};
use lambda_http::Body;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct HttpApi {
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl HttpApi {
    /// Serves every `HttpApi` route of the template on a free loopback port.
    pub async fn start(stack: &TestStack) -> Self {
        let routes = Arc::new(RouteTable::new(stack.template.http_routes()));
        let apps: HashMap<String, Arc<App>> = routes
            .routes()
            .into_iter()
            .map(|r| (r.function_logical_id.clone(), Arc::new(stack.app(&r.function_logical_id))))
            .collect();
        let apps = Arc::new(apps);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let server = tokio::spawn(web::serve(listener, move |request| {
            let (routes, apps) = (routes.clone(), apps.clone());
            async move { Box::pin(handle(&routes, &apps, request)).await }
        }));
        Self { addr, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(routes: &RouteTable, apps: &HashMap<String, Arc<App>>, request: Request) -> web::Response {
    let not_found = || web::json(http::StatusCode::NOT_FOUND, &serde_json::json!({ "message": "Not Found" }));
    let Some(matched) = routes.find(request.method.as_str(), request.uri.path()) else { return not_found() };
    let function = matched.route.function_logical_id.clone();
    let Some(app) = apps.get(&function) else { return not_found() };
    let event = request_event(&request, &matched, &uuid::Uuid::new_v4().to_string());
    let event = serde_json::to_string(&event).expect("an event serializes");
    let lambda_request = lambda_http::request::from_str(&event).expect("the runtime parses the event");
    let response = match try_dispatch(app, &function, lambda_request).await {
        Some(Ok(response)) => response,
        _ => {
            let failed = serde_json::json!({ "message": "Internal Server Error" });
            return web::json(http::StatusCode::INTERNAL_SERVER_ERROR, &failed);
        }
    };
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let body = match response.body() {
        Body::Text(text) => bytes::Bytes::from(text.clone()),
        Body::Binary(data) => bytes::Bytes::from(data.clone()),
        _ => bytes::Bytes::new(),
    };
    web::response(response.status(), &headers, body)
}
