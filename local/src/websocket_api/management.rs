//! The API Gateway Management API of the local WebSocket API (what
//! `aws-sdk-apigatewaymanagement` calls with the endpoint `http://HOST:PORT/{stage}`):
//! `PostToConnection`, `GetConnection`, `DeleteConnection`. Errors are restJson
//! errors the SDK parses (`x-amzn-ErrorType` and a `message`).

use bytes::Bytes;
use http::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{MAX_FRAME_BYTES, Outgoing, WebSocketServer};
use crate::http::{self as web, Response};

pub(super) fn handle(
    server: &WebSocketServer,
    method: &Method,
    stage: &str,
    id: &str,
    body: Bytes,
) -> Response {
    if stage != server.api.stage {
        return error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    let id = percent_decode_str(id).decode_utf8_lossy().into_owned();
    let mut connections = server.lock();
    let Some(connection) = connections.get_mut(&id).filter(|c| !c.closing) else {
        return gone();
    };
    match *method {
        Method::POST => {
            if body.len() > MAX_FRAME_BYTES {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLargeException",
                    "Message too long (at most 128 KiB)",
                );
            }
            let frame = match String::from_utf8(body.to_vec()) {
                Ok(text) => Message::text(text),
                Err(_) => Message::binary(body),
            };
            if connection.outgoing.send(Outgoing::Frame(frame)).is_err() {
                return gone();
            }
            web::response(StatusCode::OK, &[], Bytes::new())
        }
        Method::GET => {
            let millis = |ms: i64| {
                let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            };
            let context = &connection.context;
            web::json(
                StatusCode::OK,
                &json!({
                    "connectedAt": millis(context.connected_at),
                    "lastActiveAt": millis(connection.last_active_at),
                    "identity": { "sourceIp": context.source_ip, "userAgent": context.user_agent },
                }),
            )
        }
        Method::DELETE => {
            connection.closing = true;
            let _ = connection.outgoing.send(Outgoing::Close);
            web::response(StatusCode::NO_CONTENT, &[], Bytes::new())
        }
        _ => error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"),
    }
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "The connection is not open")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    web::response(
        status,
        &[("content-type", "application/json"), ("x-amzn-errortype", kind)],
        json!({ "message": message }).to_string(),
    )
}
