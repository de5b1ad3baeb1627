//! The template's `HttpApi` routes served like API Gateway HTTP APIs: a request is
//! matched to a route (the most specific one wins), turned into a payload format 2.0
//! event, and the function's answer into the HTTP response.

mod event;
mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::functions::Function;
use crate::http::{self as web, Request, Response};
use crate::runtime_api::Reply;

pub use routes::{Matched, Route, RouteTable};

/// The payload format 2.0 event API Gateway sends a function for `request`
/// matched to a route (for servers that invoke handlers in process, like the
/// tests').
pub fn request_event(
    request: &Request,
    matched: &Matched<'_>,
    request_id: &str,
) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    event::event(request, matched, request_id)
}

/// Serves one request of the HTTP API.
pub async fn handle(
    table: &RouteTable,
    functions: &BTreeMap<String, Arc<Function>>,
    request: Request,
) -> Response {
    let path = request.uri.path().to_owned();
    let method = request.method.as_str().to_owned();
    let Some(matched) = table.find(&method, &path) else {
        return web::json(StatusCode::NOT_FOUND, &json!({ "message": "Not Found" }));
    };
    let Some(function) = functions.get(&matched.route.function_logical_id) else {
        return web::json(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "message": "Internal Server Error" }));
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let event = event::event(&request, &matched, &request_id);
    let trigger = match matched.route.path.as_str() {
        "$default" => format!("http {method} {path}"),
        route => format!("http {method} {route}"),
    };
    let invoked = function
        .invoke(Bytes::from(serde_json::to_vec(&event).unwrap_or_default()), &trigger, |reply| match reply {
            Reply::Success(payload) => match serde_json::from_slice::<Value>(payload) {
                Ok(v) => v.get("statusCode").and_then(Value::as_u64).unwrap_or(200).to_string(),
                Err(_) => "502 bad reply".to_owned(),
            },
            Reply::Failure { error_type, .. } => format!("500 {error_type}"),
        })
        .await;
    let mut response = match invoked.reply {
        Reply::Success(payload) => render(&payload),
        Reply::Failure { .. } => {
            web::json(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "message": "Internal Server Error" }))
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

/// The function's answer as API Gateway renders it: a `statusCode` object is a full
/// response; anything else is a 200 with the JSON as body.
pub(crate) fn render(payload: &[u8]) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(payload) else {
        return web::json(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "message": "Internal Server Error" }));
    };
    let Some(status) = value.get("statusCode").and_then(Value::as_u64) else {
        return web::json(StatusCode::OK, &value);
    };
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = value.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(bytes) => Bytes::from(bytes),
            Err(_) => {
                return web::json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({ "message": "Internal Server Error" }),
                );
            }
        }
    } else {
        Bytes::from(body.to_owned())
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        headers.extend(map.iter().filter_map(|(k, v)| Some((k.clone(), scalar(v)?))));
    }
    if let Some(map) = value.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in map {
            let already = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
            if let (false, Some(values)) = (already, values.as_array()) {
                headers.extend(values.iter().filter_map(scalar).map(|v| (name.clone(), v)));
            }
        }
    }
    if let Some(cookies) = value.get("cookies").and_then(Value::as_array) {
        headers.extend(cookies.iter().filter_map(scalar).map(|c| ("set-cookie".to_owned(), c)));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    web::response(status, &headers, body)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_render_like_api_gateway() {
        let full = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-n": 1},
            "cookies": ["a=1", "b=2"],
            "body": "{\"ok\":true}",
            "isBase64Encoded": false
        });
        let response = render(full.to_string().as_bytes());
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["x-n"], "1");
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);

        let bare = render(b"{\"hello\":\"world\"}");
        assert_eq!(bare.status(), StatusCode::OK);
        assert_eq!(bare.headers()["content-type"], "application/json");

        let binary = json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true});
        let response = render(binary.to_string().as_bytes());
        assert_eq!(response.status(), StatusCode::OK);
    }
}
