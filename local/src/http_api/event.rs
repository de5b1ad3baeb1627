//! The payload format 2.0 event API Gateway sends for a request
//! (`aws_lambda_events`' `ApiGatewayV2httpRequest`).

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

use super::routes::Matched;
use crate::http::Request;
use crate::stack::ACCOUNT_ID;

pub(super) fn event(request: &Request, matched: &Matched<'_>, request_id: &str) -> ApiGatewayV2httpRequest {
    let (headers, cookies) = headers_and_cookies(&request.headers);
    let raw_query = request.uri.query().unwrap_or_default();
    let route_key = match matched.route.path.as_str() {
        "$default" => "$default".to_owned(),
        path => format!("{} {path}", matched.route.method),
    };
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key.clone());
    event.raw_path = Some(request.uri.path().to_owned());
    event.raw_query_string = Some(raw_query.to_owned());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.query_string_parameters = query_parameters(raw_query);
    event.path_parameters = matched.path_parameters.clone().into_iter().collect();
    event.request_context = context(request, &headers, route_key, request_id);
    event.headers = headers;
    (event.body, event.is_base64_encoded) = body(&request.body);
    // Not part of payload 2.0, but serialized anyway: keep it truthful.
    #[allow(deprecated)]
    {
        event.http_method = request.method.clone();
    }
    event
}

/// The headers, repeated ones joined with commas, and the cookies of the `cookie`
/// header (which API Gateway moves to `cookies`).
fn headers_and_cookies(request_headers: &HeaderMap) -> (HeaderMap, Vec<String>) {
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in request_headers.keys() {
        let values: Vec<String> = request_headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == http::header::COOKIE {
            let pieces = values.iter().flat_map(|v| v.split(';')).map(str::trim).filter(|c| !c.is_empty());
            cookies.extend(pieces.map(str::to_owned));
        } else if let Ok(value) = HeaderValue::from_str(&values.join(",")) {
            headers.insert(name.clone(), value);
        }
    }
    (headers, cookies)
}

/// `application/x-www-form-urlencoded` pairs; a repeated name's values are joined with
/// commas when the event is serialized.
fn query_parameters(raw_query: &str) -> QueryMap {
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(key.into_owned()).or_default().push(value.into_owned());
    }
    QueryMap::from(query)
}

fn context(
    request: &Request,
    headers: &HeaderMap,
    route_key: String,
    request_id: &str,
) -> ApiGatewayV2httpRequestContext {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = header("host").unwrap_or_else(|| "localhost".to_owned());
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = request.method.clone();
    http.path = Some(request.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some(request.peer.ip().to_string());
    http.user_agent = Some(header("user-agent").unwrap_or_default());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key);
    context.account_id = Some(ACCOUNT_ID.to_owned());
    context.apiid = Some("local".to_owned());
    context.domain_prefix = Some(host.split('.').next().unwrap_or("localhost").to_owned());
    context.domain_name = Some(host);
    context.http = http;
    context.request_id = Some(request_id.to_owned());
    context.stage = Some("$default".to_owned());
    context.time = Some(now.format(&format).unwrap_or_default());
    context.time_epoch = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
    context
}

/// The body as text, or base64 when it is not UTF-8; none when empty.
fn body(bytes: &[u8]) -> (Option<String>, bool) {
    match std::str::from_utf8(bytes) {
        _ if bytes.is_empty() => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::HttpRoute;
    use std::collections::BTreeMap;

    fn request(uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Request {
            method: http::Method::POST,
            uri: uri.parse().unwrap(),
            headers: map,
            body: bytes::Bytes::copy_from_slice(body),
            peer: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    #[test]
    fn the_event_has_payload_2_0s_shape() {
        let route = HttpRoute {
            method: "POST".into(),
            path: "/v1/payments/{id}/capture".into(),
            function_logical_id: "Capture".into(),
        };
        let path_parameters = BTreeMap::from([("id".to_owned(), "p 1".to_owned())]);
        let matched = Matched { route: &route, path_parameters };
        let request = request(
            "/v1/payments/p%201/capture?a=1&a=2&b=x+y%2B",
            &[("host", "api.example.com"), ("x-n", "1"), ("x-n", "2"), ("cookie", "s=1; t=2")],
            b"{}",
        );
        let json = serde_json::to_value(event(&request, &matched, "r1")).unwrap();
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "POST /v1/payments/{id}/capture");
        assert_eq!(json["rawPath"], "/v1/payments/p%201/capture");
        assert_eq!(json["rawQueryString"], "a=1&a=2&b=x+y%2B");
        assert_eq!(json["queryStringParameters"], serde_json::json!({"a": "1,2", "b": "x y+"}));
        assert_eq!(json["pathParameters"], serde_json::json!({"id": "p 1"}));
        assert_eq!(json["headers"]["x-n"], "1,2");
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(json["cookies"], serde_json::json!(["s=1", "t=2"]));
        assert_eq!(json["body"], "{}");
        assert_eq!(json["isBase64Encoded"], false);
        let context = &json["requestContext"];
        assert_eq!(context["accountId"], ACCOUNT_ID);
        assert_eq!(context["domainName"], "api.example.com");
        assert_eq!(context["domainPrefix"], "api");
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["requestId"], "r1");
        assert_eq!(context["stage"], "$default");
        let parsed = lambda_http_shape(&json);
        assert_eq!(parsed.request_context.http.method, http::Method::POST);
    }

    /// The event reads back as the type the functions' runtime parses.
    fn lambda_http_shape(json: &serde_json::Value) -> ApiGatewayV2httpRequest {
        serde_json::from_value(json.clone()).expect("an ApiGatewayV2httpRequest")
    }

    #[test]
    fn binary_bodies_are_base64_and_empty_ones_absent() {
        assert_eq!(body(&[0xff, 0x00]), (Some("/wA=".to_owned()), true));
        assert_eq!(body(b""), (None, false));
    }
}
