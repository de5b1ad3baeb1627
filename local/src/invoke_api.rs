//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`, what
//! `aws lambda invoke --endpoint-url` and the SDKs call) for every function of the
//! template, by logical id, plus a few local endpoints under `/local/`:
//! `GET /local/routes` (the HTTP API's route table), `GET /local/functions` (functions
//! and the processes they started) and `POST /local/schedules/{function}[/{event}]` (fires
//! the function's `Schedule` events now).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::functions::{Function, plain_status};
use crate::http::{self as web, Request, Response};
use crate::http_api::RouteTable;
use crate::runtime_api::Reply;
use crate::schedule::Schedule;

pub struct InvokeApi {
    pub functions: BTreeMap<String, Arc<Function>>,
    pub routes: RouteTable,
    pub schedules: Vec<Schedule>,
    /// `Event` (asynchronous) invocations still running; aborted at shutdown.
    pub background: Mutex<JoinSet<()>>,
}

impl InvokeApi {
    pub async fn handle(&self, request: Request) -> Response {
        let path = request.uri.path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["2015-03-31", "functions", name, "invocations"]) => self.invoke(name, request).await,
            ("GET", ["local", "routes"]) => {
                let routes: Vec<Value> = self
                    .routes
                    .routes()
                    .into_iter()
                    .map(|r| json!({ "method": r.method, "path": r.path, "function": r.function_logical_id }))
                    .collect();
                web::json(StatusCode::OK, &Value::from(routes))
            }
            ("GET", ["local", "functions"]) => {
                let functions: Vec<Value> =
                    self.functions.values().map(|f| json!({ "name": f.name(), "pids": f.pids() })).collect();
                web::json(StatusCode::OK, &Value::from(functions))
            }
            ("POST", ["local", "schedules", name]) => self.fire_schedules(name, None).await,
            ("POST", ["local", "schedules", name, event]) => self.fire_schedules(name, Some(event)).await,
            _ => web::json(
                StatusCode::NOT_FOUND,
                &json!({ "message": format!("no such endpoint: {} {path}", request.method) }),
            ),
        }
    }

    async fn invoke(&self, name: &str, request: Request) -> Response {
        let name = function_name(name);
        let Some(function) = self.functions.get(&name).cloned() else {
            return not_found(&name);
        };
        let invocation_type = request
            .headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse")
            .to_owned();
        let payload = if request.body.is_empty() { bytes::Bytes::from_static(b"{}") } else { request.body };
        match invocation_type.as_str() {
            "DryRun" => web::response(StatusCode::NO_CONTENT, &[], ""),
            "Event" => {
                self.background.lock().unwrap_or_else(|p| p.into_inner()).spawn(async move {
                    function.invoke(payload, "invoke (Event)", plain_status).await;
                });
                web::response(StatusCode::ACCEPTED, &[], "")
            }
            "RequestResponse" => {
                let invoked = function.invoke(payload, "invoke", plain_status).await;
                match invoked.reply {
                    Reply::Success(body) => web::response(
                        StatusCode::OK,
                        &[("content-type", "application/json"), ("x-amz-executed-version", "$LATEST")],
                        body,
                    ),
                    Reply::Failure { payload, .. } => web::response(
                        StatusCode::OK,
                        &[
                            ("content-type", "application/json"),
                            ("x-amz-executed-version", "$LATEST"),
                            ("x-amz-function-error", "Unhandled"),
                        ],
                        payload,
                    ),
                }
            }
            other => {
                let body = json!({ "Type": "User", "message": format!("invalid invocation type {other}") });
                web::response(
                    StatusCode::BAD_REQUEST,
                    &[
                        ("content-type", "application/json"),
                        ("x-amzn-errortype", "InvalidParameterValueException"),
                    ],
                    body.to_string(),
                )
            }
        }
    }

    /// Fires the function's schedules (all, or the one named `event`) now.
    async fn fire_schedules(&self, name: &str, event: Option<&str>) -> Response {
        let schedules: Vec<&Schedule> = self
            .schedules
            .iter()
            .filter(|s| s.function.name() == name && event.is_none_or(|e| e == s.name))
            .collect();
        if schedules.is_empty() {
            let what =
                event.map_or_else(|| "no Schedule event".to_owned(), |e| format!("no Schedule event {e}"));
            return web::json(
                StatusCode::NOT_FOUND,
                &json!({ "message": format!("{name} has {what} in template.yaml") }),
            );
        }
        let mut results = Vec::new();
        for schedule in schedules {
            let result = match schedule.fire().await {
                Reply::Success(body) => json!({
                    "event": schedule.name,
                    "expression": schedule.expression,
                    "result": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
                }),
                Reply::Failure { payload, .. } => json!({
                    "event": schedule.name,
                    "expression": schedule.expression,
                    "error": serde_json::from_slice::<Value>(&payload).unwrap_or(Value::Null),
                }),
            };
            results.push(result);
        }
        web::json(StatusCode::OK, &Value::from(results))
    }
}

/// A function name as the Invoke API accepts it: the name, or an ARN
/// (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`), URL-encoded.
fn function_name(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    match decoded.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => (*name).to_owned(),
        [name, _qualifier] => (*name).to_owned(),
        _ => decoded,
    }
}

fn not_found(name: &str) -> Response {
    let body = json!({ "Type": "User", "message": format!("Function not found: {name} (use a logical id of template.yaml)") });
    web::response(
        StatusCode::NOT_FOUND,
        &[("content-type", "application/json"), ("x-amzn-errortype", "ResourceNotFoundException")],
        body.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn names_and_arns() {
        assert_eq!(function_name("BackupFunction"), "BackupFunction");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:BackupFunction"),
            "BackupFunction"
        );
        assert_eq!(function_name("arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3AX%3A%24LATEST"), "X");
        assert_eq!(function_name("X:$LATEST"), "X");
    }
}
