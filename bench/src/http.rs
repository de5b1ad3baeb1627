//! API Gateway HTTP API (payload v2) events as JSON (the cold-start runs send
//! them over the Runtime API; the in-process runs parse the same JSON), and
//! the dispatch of every HTTP function's handler by logical id.

use crate::error::{BenchError, Result};
use caas::App;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

pub struct Call<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub path_params: Vec<(&'a str, String)>,
    pub query: Vec<(&'a str, String)>,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

impl<'a> Call<'a> {
    pub fn new(method: &'a str, route: &'a str) -> Self {
        Self { method, route, path_params: Vec::new(), query: Vec::new(), headers: Vec::new(), body: None }
    }

    pub fn id(mut self, id: &str) -> Self {
        self.path_params.push(("id", id.to_owned()));
        self
    }

    pub fn query(mut self, name: &'a str, value: &str) -> Self {
        self.query.push((name, value.to_owned()));
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.headers.push(("authorization", format!("Bearer {token}")));
        self
    }

    pub fn idempotency_key(mut self) -> Self {
        self.headers.push(("idempotency-key", uuid::Uuid::new_v4().to_string()));
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.headers.push(("content-type", "application/json".to_owned()));
        self.body = Some(body.to_string());
        self
    }

    /// The event Lambda delivers for this request.
    pub fn event(&self) -> Value {
        let mut path = self.route.to_owned();
        for (name, value) in &self.path_params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let raw_query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let map = |pairs: &[(&str, String)]| -> serde_json::Map<String, Value> {
            pairs.iter().map(|(k, v)| (k.to_string(), Value::from(v.as_str()))).collect()
        };
        json!({
            "version": "2.0",
            "routeKey": format!("{} {}", self.method, self.route),
            "rawPath": path,
            "rawQueryString": raw_query.join("&"),
            "queryStringParameters": map(&self.query),
            "pathParameters": map(&self.path_params),
            "headers": map(&self.headers),
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
                "http": { "method": self.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench" },
                "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": format!("{} {}", self.method, self.route),
                "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 1_795_564_800_000i64
            },
            "body": self.body,
            "isBase64Encoded": false
        })
    }

    pub fn request(&self) -> Result<Request> {
        lambda_http::request::from_str(&self.event().to_string())
            .map_err(|e| BenchError::Setup(format!("API Gateway event of {}: {e}", self.route)))
    }
}

/// Runs `request` through the handler of the function with this logical id.
pub async fn dispatch(app: &App, function: &str, request: Request) -> Result<Response<Body>> {
    match caas_tests::api::try_dispatch(app, function, request).await {
        Some(result) => result.map_err(|e| BenchError::Handler(function.to_owned(), e.to_string())),
        None => Err(BenchError::Setup(format!("no HTTP function {function}"))),
    }
}

/// Status and JSON body (Null when empty or not JSON).
pub fn parts(response: &Response<Body>) -> (u16, Value) {
    let text = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The body if the status is `expected`, else an error naming the function.
pub fn expect(function: &str, response: &Response<Body>, expected: u16) -> Result<Value> {
    let (status, body) = parts(response);
    if status == expected {
        Ok(body)
    } else {
        Err(BenchError::Status { function: function.to_owned(), expected, status, body: body.to_string() })
    }
}

/// A string field of a JSON answer.
pub fn field(body: &Value, name: &str) -> Result<String> {
    body[name].as_str().map(str::to_owned).ok_or_else(|| BenchError::Setup(format!("no `{name}` in {body}")))
}
