//! The template's `HttpApi` routes served like API Gateway HTTP APIs: a request is
//! matched to a route (the most specific one wins), turned into a payload format 2.0
//! event, and the function's answer into the HTTP response.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::functions::Function;
use crate::http::{self as web, Request, Response};
use crate::runtime_api::Reply;
use crate::template::HttpRoute;

/// A route with its path split into segments.
#[derive(Debug, Clone)]
pub struct Route {
    pub route: HttpRoute,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path.
    Greedy(String),
}

/// The routes of the API, as served.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// A request matched to a route.
#[derive(Debug, PartialEq)]
pub struct Matched<'a> {
    pub route: &'a HttpRoute,
    pub path_parameters: BTreeMap<String, String>,
}

impl RouteTable {
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        let routes = routes
            .into_iter()
            .map(|route| {
                let segments = split(&route.path)
                    .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    })
                    .collect();
                Route { route, segments }
            })
            .collect();
        RouteTable { routes }
    }

    pub fn routes(&self) -> Vec<HttpRoute> {
        self.routes.iter().map(|r| r.route.clone()).collect()
    }

    /// API Gateway's choice: an exact method beats `ANY`, more literal segments beat
    /// parameters, parameters beat a greedy tail; `$default` when nothing else matches.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segments: Vec<&str> = split(path).collect();
        let mut best: Option<((usize, usize, bool), Matched<'_>)> = None;
        for route in &self.routes {
            let method_ok = route.route.method == "ANY" || route.route.method.eq_ignore_ascii_case(method);
            if !method_ok || route.route.path == "$default" {
                continue;
            }
            let Some((literals, params)) = match_segments(&route.segments, &segments) else {
                continue;
            };
            let rank = (literals, params.len(), route.route.method != "ANY");
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, Matched { route: &route.route, path_parameters: params }));
            }
        }
        best.map(|(_, m)| m).or_else(|| {
            self.routes
                .iter()
                .find(|r| r.route.path == "$default")
                .map(|r| Matched { route: &r.route, path_parameters: BTreeMap::new() })
        })
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Literal segments matched and the parameters, when `route` matches `path`.
fn match_segments(route: &[Segment], path: &[&str]) -> Option<(usize, BTreeMap<String, String>)> {
    let mut params = BTreeMap::new();
    let mut literals = 0;
    for (i, segment) in route.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                if i >= path.len() {
                    return None;
                }
                let rest: Vec<String> = path[i..].iter().map(|s| percent_decode(s)).collect();
                params.insert(name.clone(), rest.join("/"));
                return Some((literals, params));
            }
            Segment::Literal(text) => {
                if path.get(i) != Some(&text.as_str()) {
                    return None;
                }
                literals += 1;
            }
            Segment::Param(name) => {
                let value = path.get(i)?;
                params.insert(name.clone(), percent_decode(value));
            }
        }
    }
    (route.len() == path.len()).then_some((literals, params))
}

/// `%XX` and nothing else (`+` stays a plus, as in a path).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let event = event(&request, &matched, &request_id);
    let trigger = match matched.route.path.as_str() {
        "$default" => format!("http {method} {path}"),
        route => format!("http {method} {route}"),
    };
    let invoked = function
        .invoke(Bytes::from(event.to_string()), &trigger, |reply| match reply {
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

/// The payload format 2.0 event API Gateway sends for `request`.
fn event(request: &Request, matched: &Matched<'_>, request_id: &str) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = request.uri.query().unwrap_or_default().to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "));
        query
            .entry(percent_decode(&key.replace('+', " ")))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let route_key = match matched.route.path.as_str() {
        "$default" => "$default".to_owned(),
        path => format!("{} {path}", matched.route.method),
    };
    let (body, base64) = match std::str::from_utf8(&request.body) {
        _ if request.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::from(text), false),
        Err(_) => (Value::from(base64::engine::general_purpose::STANDARD.encode(&request.body)), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    let host = headers.get("host").cloned().unwrap_or_else(|| "localhost".to_owned());
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": request.method.as_str(),
                "path": request.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": request.peer.ip().to_string(),
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format(&format).unwrap_or_default(),
            "timeEpoch": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
        },
        "isBase64Encoded": base64,
    });
    let object = event.as_object_mut();
    if let Some(object) = object {
        if !body.is_null() {
            object.insert("body".to_owned(), body);
        }
        if !cookies.is_empty() {
            object.insert("cookies".to_owned(), Value::from(cookies));
        }
        if !query.is_empty() {
            object.insert("queryStringParameters".to_owned(), to_object(&query));
        }
        if !matched.path_parameters.is_empty() {
            object.insert("pathParameters".to_owned(), to_object(&matched.path_parameters));
        }
    }
    event
}

fn to_object(map: &BTreeMap<String, String>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<Map<_, _>>())
}

/// The function's answer as API Gateway renders it: a `statusCode` object is a full
/// response; anything else is a 200 with the JSON as body.
fn render(payload: &[u8]) -> Response {
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

    fn route(method: &str, path: &str, function: &str) -> HttpRoute {
        HttpRoute { method: method.into(), path: path.into(), function_logical_id: function.into() }
    }

    #[test]
    fn most_specific_route_wins() {
        let table = RouteTable::new(vec![
            route("GET", "/v1/accounts/{id}", "Get"),
            route("GET", "/v1/accounts/{id}/transactions", "List"),
            route("POST", "/v1/payments/{id}/capture", "Capture"),
            route("ANY", "/v1/payments/{id}/capture", "Any"),
            route("GET", "/v1/accounts/me", "Me"),
            route("GET", "/files/{path+}", "Files"),
        ]);
        let found = |m: &str, p: &str| {
            table.find(m, p).map(|m| (m.route.function_logical_id.clone(), m.path_parameters))
        };
        let params =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(found("GET", "/v1/accounts/a%201"), Some(("Get".into(), params(&[("id", "a 1")]))));
        assert_eq!(found("GET", "/v1/accounts/me"), Some(("Me".into(), params(&[]))));
        assert_eq!(
            found("GET", "/v1/accounts/a1/transactions"),
            Some(("List".into(), params(&[("id", "a1")])))
        );
        assert_eq!(
            found("POST", "/v1/payments/p1/capture"),
            Some(("Capture".into(), params(&[("id", "p1")])))
        );
        assert_eq!(found("DELETE", "/v1/payments/p1/capture"), Some(("Any".into(), params(&[("id", "p1")]))));
        assert_eq!(found("GET", "/files/a/b.txt"), Some(("Files".into(), params(&[("path", "a/b.txt")]))));
        assert_eq!(found("POST", "/v1/accounts/a1"), None);
        assert_eq!(found("GET", "/v1/accounts"), None);
    }

    #[test]
    fn default_route_catches_the_rest() {
        let table = RouteTable::new(vec![route("GET", "/a", "A"), route("ANY", "$default", "Fallback")]);
        assert_eq!(table.find("GET", "/a").map(|m| m.route.function_logical_id.clone()), Some("A".into()));
        assert_eq!(
            table.find("PUT", "/zzz").map(|m| m.route.function_logical_id.clone()),
            Some("Fallback".into())
        );
    }

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
