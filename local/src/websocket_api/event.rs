//! The events API Gateway sends a WebSocket API's functions (the REST-style proxy
//! event, `aws_lambda_events`' `ApiGatewayWebsocketProxyRequest`): `CONNECT` with the
//! handshake's headers and query string, `MESSAGE` with the frame as `body`,
//! `DISCONNECT` with the close's status code and reason.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::stack::ACCOUNT_ID;

/// What every event of one connection carries.
#[derive(Debug, Clone)]
pub(super) struct ConnectionContext {
    pub api_id: String,
    pub stage: String,
    pub domain_name: String,
    pub connection_id: String,
    /// Epoch milliseconds.
    pub connected_at: i64,
    pub source_ip: String,
    pub user_agent: String,
}

impl ConnectionContext {
    fn request_context(&self, route_key: &str, event_type: &str, request_id: &str) -> Map<String, Value> {
        let now = time::OffsetDateTime::now_utc();
        let format = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        let context = json!({
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": now.format(&format).unwrap_or_default(),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": self.connected_at,
            "requestTimeEpoch": epoch_millis(now),
            "identity": { "sourceIp": self.source_ip, "userAgent": self.user_agent },
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": self.connection_id,
            "apiId": self.api_id,
            "accountId": ACCOUNT_ID,
        });
        match context {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

pub(super) fn epoch_millis(at: time::OffsetDateTime) -> i64 {
    at.unix_timestamp() * 1000 + i64::from(at.millisecond())
}

/// `$connect`: the handshake's headers and query string.
pub(super) fn connect(
    ctx: &ConnectionContext,
    headers: &HeaderMap,
    raw_query: &str,
    request_id: &str,
) -> Value {
    let (single, multi) = header_maps(headers);
    let (query, multi_query) = query_maps(raw_query);
    json!({
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "requestContext": ctx.request_context("$connect", "CONNECT", request_id),
        "isBase64Encoded": false,
    })
}

/// A frame from the client, routed to `route_key`.
pub(super) fn message(
    ctx: &ConnectionContext,
    route_key: &str,
    frame: &[u8],
    binary: bool,
    request_id: &str,
    message_id: &str,
) -> Value {
    let mut context = ctx.request_context(route_key, "MESSAGE", request_id);
    context.insert("messageId".to_owned(), Value::from(message_id));
    let body = if binary {
        base64::engine::general_purpose::STANDARD.encode(frame)
    } else {
        String::from_utf8_lossy(frame).into_owned()
    };
    json!({ "requestContext": context, "body": body, "isBase64Encoded": binary })
}

/// `$disconnect`: the close's status code and reason.
pub(super) fn disconnect(ctx: &ConnectionContext, status_code: u16, reason: &str, request_id: &str) -> Value {
    let mut context = ctx.request_context("$disconnect", "DISCONNECT", request_id);
    context.insert("disconnectStatusCode".to_owned(), Value::from(status_code));
    context.insert("disconnectReason".to_owned(), Value::from(reason));
    let host = ctx.domain_name.clone();
    json!({
        "headers": { "Host": host, "X-Forwarded-For": ctx.source_ip },
        "multiValueHeaders": { "Host": [host], "X-Forwarded-For": [ctx.source_ip] },
        "requestContext": context,
        "isBase64Encoded": false,
    })
}

/// The headers as API Gateway's REST-style events carry them: the last value of
/// each name, and every value.
fn header_maps(headers: &HeaderMap) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_owned(), value.clone());
        multi.entry(name.as_str().to_owned()).or_default().push(value);
    }
    (single, multi)
}

/// The query's parameters (the last value of each name, and every value); `null`
/// when there are none, as API Gateway sends them.
fn query_maps(raw_query: &str) -> (Value, Value) {
    let mut single = Map::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        single.insert(key.clone().into_owned(), Value::from(value.clone().into_owned()));
        multi.entry(key.into_owned()).or_default().push(value.into_owned());
    }
    if single.is_empty() {
        return (Value::Null, Value::Null);
    }
    (Value::Object(single), json!(multi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            api_id: "WebSocketApi".into(),
            stage: "live".into(),
            domain_name: "127.0.0.1:3002".into(),
            connection_id: "abc=".into(),
            connected_at: 1_795_564_800_000,
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
        }
    }

    fn parsed(event: &Value) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(event.clone()).expect("an ApiGatewayWebsocketProxyRequest")
    }

    #[test]
    fn the_events_have_api_gateways_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:3002".parse().unwrap());
        headers.append("x-n", "1".parse().unwrap());
        headers.append("x-n", "2".parse().unwrap());
        let connect = connect(&ctx(), &headers, "access_token=a%2Bb&x=1&x=2", "r1");
        assert_eq!(connect["queryStringParameters"], json!({"access_token": "a+b", "x": "2"}));
        assert_eq!(connect["multiValueQueryStringParameters"]["x"], json!(["1", "2"]));
        assert_eq!(connect["multiValueHeaders"]["x-n"], json!(["1", "2"]));
        let event = parsed(&connect);
        let context = &event.request_context;
        assert_eq!(context.route_key.as_deref(), Some("$connect"));
        assert_eq!(context.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(context.connection_id.as_deref(), Some("abc="));
        assert_eq!(context.stage.as_deref(), Some("live"));
        assert_eq!(context.connected_at, 1_795_564_800_000);
        assert_eq!(context.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(event.query_string_parameters.first("access_token"), Some("a+b"));
        assert_eq!(event.headers.get("host").unwrap(), "127.0.0.1:3002");
        assert_eq!(super::connect(&ctx(), &HeaderMap::new(), "", "r")["queryStringParameters"], Value::Null);

        let message = parsed(&message(&ctx(), "send", b"{\"action\":\"send\"}", false, "r2", "m1"));
        assert_eq!(message.request_context.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(message.request_context.message_id.as_deref(), Some("m1"));
        assert_eq!(message.body.as_deref(), Some("{\"action\":\"send\"}"));
        let binary = parsed(&super::message(&ctx(), "$default", &[0xff], true, "r3", "m2"));
        assert_eq!((binary.body.as_deref(), binary.is_base64_encoded), (Some("/w=="), true));

        let gone = parsed(&disconnect(&ctx(), 1001, "Going away", "r4"));
        assert_eq!(gone.request_context.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(gone.request_context.event_type.as_deref(), Some("DISCONNECT"));
        assert_eq!(gone.request_context.disconnect_status_code, Some(1001));
    }
}
