// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! The WebSocket API's functions against the emulator, with the events API
//! Gateway sends (`requestContext.routeKey`, `eventType`, `connectionId`):
//! `$connect` refuses (401) without a valid access token and records the
//! connection (TTL, listed under its user); `send` posts as the HTTP route
//! does (one order, the same idempotency, participants only); `$disconnect`
//! forgets the connection, after which `send` is refused.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use caas::auth::Role;
use caas::clock::Clock;
use caas_tests::api::{Api, api_event, claims, ws_event};
use caas_tests::*;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

async fn invoke(api: &Api<'_>, event: ApiGatewayWebsocketProxyRequest) -> (i64, Value) {
    let route = event.request_context.route_key.clone().unwrap_or_default();
    let function = match route.as_str() {
        "$connect" => "WsConnectFunction",
        "$disconnect" => "WsDisconnectFunction",
        _ => "WsSendFunction",
    };
    let app = api.app(function);
    let event = LambdaEvent::new(event, Context::default());
    let response: ApiGatewayProxyResponse = match function {
        "WsConnectFunction" => Box::pin(ws_connect::handler(&app, event)).await,
        "WsDisconnectFunction" => Box::pin(ws_disconnect::handler(&app, event)).await,
        _ => Box::pin(ws_send::handler(&app, event)).await,
    }
    .unwrap_or_else(|e| panic!("{function} failed instead of answering: {e}"));
    let frame = match &response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str(text).expect("a JSON frame")
        }
        None => Value::Null,
        Some(other) => panic!("{other:?}"),
    };
    (response.status_code, frame)
}

fn send_frame(conversation: &str, client_id: &str, text: &str) -> String {
    json!({"action": "send", "conversation_id": conversation, "client_message_id": client_id, "body": text})
        .to_string()
}

async fn group(api: &Api<'_>, token: &str, others: &[&str]) -> String {
    let body = json!({"type": "group", "title": "live", "participants": others});
    let response =
        api.post("CreateConversationFunction", "/v1/conversations", None, token, None, &body).await;
    let (status, conversation) = parts(&response);
    assert_eq!(status, 201, "{conversation}");
    conversation["conversation_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn connect_needs_a_valid_access_token_and_records_the_connection() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@acme.example").await;
    let ada_id = claims(&ada)["sub"].as_str().unwrap().to_owned();

    let (status, frame) = invoke(&api, ws_event("$connect", "conn-none", &[], &[], None)).await;
    assert_eq!((status, frame["problem"]["status"].as_u64()), (401, Some(401)), "{frame}");
    let forged = format!("{}x", &ada[..ada.len() - 1]);
    assert_eq!(
        invoke(&api, ws_event("$connect", "conn-bad", &[("access_token", &forged)], &[], None)).await.0,
        401
    );
    let client = client_token(&stack, "acme", Role::Member).await;
    assert_eq!(
        invoke(&api, ws_event("$connect", "conn-bot", &[("access_token", &client)], &[], None)).await.0,
        403
    );
    assert!(
        scan_raw_items(&stack, "kind = :c", &[(":c", "connection")]).await.is_empty(),
        "nothing recorded"
    );

    stack.round_trips.reset();
    let (status, _) =
        invoke(&api, ws_event("$connect", "conn-q", &[("access_token", &ada)], &[], None)).await;
    assert_eq!(status, 200);
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["PutItem"], "one write");
    let bearer = format!("Bearer {ada}");
    let (status, _) =
        invoke(&api, ws_event("$connect", "conn-h", &[], &[("authorization", &bearer)], None)).await;
    assert_eq!(status, 200);

    let items = scan_raw_items(&stack, "kind = :c", &[(":c", "connection")]).await;
    assert_eq!(items.len(), 2);
    let now = stack.clock.now().unix_timestamp();
    for item in &items {
        assert_eq!(item["user_id"].as_s().unwrap(), &ada_id);
        assert_eq!(item["tenant_id"].as_s().unwrap(), "acme");
        let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert_eq!(expires, now + 7200, "API Gateway's two hours");
        assert_eq!(
            item["gsi1pk"].as_s().unwrap(),
            &format!("T#acme#CONNS#{ada_id}"),
            "listed under its user"
        );
    }

    // $disconnect forgets it; again changes nothing.
    assert_eq!(invoke(&api, ws_event("$disconnect", "conn-q", &[], &[], None)).await.0, 200);
    assert_eq!(invoke(&api, ws_event("$disconnect", "conn-q", &[], &[], None)).await.0, 200);
    assert_eq!(scan_raw_items(&stack, "kind = :c", &[(":c", "connection")]).await.len(), 1);
}

#[tokio::test]
async fn send_posts_as_the_connections_user_like_the_http_route() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@acme.example").await;
    let bob = api.token("acme", "bob@acme.example").await;
    let dan = api.token("acme", "dan@acme.example").await;
    let bob_id = claims(&bob)["sub"].as_str().unwrap().to_owned();
    let id = group(&api, &ada, &[&bob_id]).await;
    for (connection, token) in [("conn-ada", &ada), ("conn-bob", &bob), ("conn-dan", &dan)] {
        let connect = ws_event("$connect", connection, &[("access_token", token)], &[], None);
        assert_eq!(invoke(&api, connect).await.0, 200);
    }

    stack.round_trips.reset();
    let (status, frame) = invoke(
        &api,
        ws_event("send", "conn-ada", &[], &[], Some(&send_frame(&id, "ws-1", "over the socket"))),
    )
    .await;
    assert_eq!(status, 201, "{frame}");
    assert_eq!(frame["type"], "message.posted");
    assert_eq!((frame["message"]["seq"].as_u64(), frame["replayed"].as_bool()), (Some(1), Some(false)));
    assert_eq!(
        stack.round_trips.operations("DynamoDB"),
        ["GetItem", "BatchGetItem", "TransactWriteItems"],
        "the connection, then the post's read and transaction"
    );

    // The same client message id again, over the socket or HTTP: the first answer.
    let (status, again) = invoke(
        &api,
        ws_event("send", "conn-ada", &[], &[], Some(&send_frame(&id, "ws-1", "over the socket"))),
    )
    .await;
    assert_eq!((status, again["replayed"].as_bool()), (201, Some(true)));
    assert_eq!(again["message"], frame["message"]);
    let body = json!({"client_message_id": "ws-1", "body": "over the socket"});
    let http = api
        .post("PostMessageFunction", "/v1/conversations/{id}/messages", Some(&id), &ada, None, &body)
        .await;
    assert_eq!(header(&http, "idempotent-replayed"), Some("true"), "one request, either way");

    let (status, _) =
        invoke(&api, ws_event("send", "conn-bob", &[], &[], Some(&send_frame(&id, "ws-2", "bob here"))))
            .await;
    assert_eq!(status, 201);
    let bearer = format!("Bearer {bob}");
    let list = api_event(
        "GET",
        "/v1/conversations/{id}/messages",
        &[("id", &id)],
        &[],
        &[("authorization", &bearer)],
        None,
    );
    let (_, page) = parts(&api.call("ListMessagesFunction", list).await);
    let bodies: Vec<(u64, &str)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(bodies, [(1, "over the socket"), (2, "bob here")]);

    // Participants only; bad frames named; an unknown or closed connection refused.
    let (status, frame) =
        invoke(&api, ws_event("send", "conn-dan", &[], &[], Some(&send_frame(&id, "ws-3", "let me in"))))
            .await;
    assert_eq!((status, frame["type"].as_str()), (404, Some("error")), "{frame}");
    let (status, frame) = invoke(&api, ws_event("send", "conn-ada", &[], &[], Some("not json"))).await;
    assert_eq!(status, 400, "{frame}");
    let missing = json!({"action": "send", "conversation_id": id, "body": "x"}).to_string();
    let (status, frame) = invoke(&api, ws_event("send", "conn-ada", &[], &[], Some(&missing))).await;
    assert_eq!((status, frame["problem"]["field"].as_str()), (400, Some("client_message_id")), "{frame}");
    let (status, _) =
        invoke(&api, ws_event("send", "conn-nobody", &[], &[], Some(&send_frame(&id, "ws-4", "who?")))).await;
    assert_eq!(status, 401);
    assert_eq!(invoke(&api, ws_event("$disconnect", "conn-bob", &[], &[], None)).await.0, 200);
    let (status, _) =
        invoke(&api, ws_event("send", "conn-bob", &[], &[], Some(&send_frame(&id, "ws-5", "gone")))).await;
    assert_eq!(status, 401, "a closed connection posts nothing");

    // A connection outlives its token, not API Gateway's two hours; and what it posts
    // is checked on stored state: a disabled user's connection posts nothing.
    stack.clock.advance(time::Duration::minutes(30));
    let (status, frame) =
        invoke(&api, ws_event("send", "conn-ada", &[], &[], Some(&send_frame(&id, "ws-6", "still here"))))
            .await;
    assert_eq!(status, 201, "the token expired, the connection did not: {frame}");
    let owner = api.treasurer("acme").await;
    let ada_id = claims(&ada)["sub"].as_str().unwrap().to_owned();
    let disable = api_event(
        "PATCH",
        "/v1/users/{id}",
        &[("id", &ada_id)],
        &[],
        &[("authorization", &format!("Bearer {owner}")), ("content-type", "application/json")],
        Some(r#"{"status": "disabled"}"#),
    );
    assert_eq!(api.call("UpdateUserFunction", disable).await.status(), 200);
    let (status, _) =
        invoke(&api, ws_event("send", "conn-ada", &[], &[], Some(&send_frame(&id, "ws-7", "disabled"))))
            .await;
    assert_eq!(status, 403, "the user's directory entry is a condition of the post");
    stack.clock.advance(time::Duration::hours(2));
    let (status, _) =
        invoke(&api, ws_event("send", "conn-dan", &[], &[], Some(&send_frame(&id, "ws-8", "late")))).await;
    assert_eq!(status, 401, "expired with API Gateway's limit, even if TTL has not deleted it");
}

#[tokio::test]
async fn the_samples_connect_send_and_disconnect() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@acme.example").await;
    let id = group(&api, &ada, &[]).await;
    let sample = |name: &str| -> ApiGatewayWebsocketProxyRequest {
        let text = event_file(name).replace("{{ACCESS_TOKEN}}", &ada).replace("{{CONVERSATION_ID}}", &id);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"))
    };
    assert_eq!(invoke(&api, sample("ws-connect.json")).await.0, 200);
    let (status, frame) = invoke(&api, sample("ws-send.json")).await;
    assert_eq!((status, frame["message"]["body"].as_str()), (201, Some("Hello over the socket")), "{frame}");
    assert_eq!(invoke(&api, sample("ws-disconnect.json")).await.0, 200);
    assert_eq!(invoke(&api, sample("ws-send.json")).await.0, 401, "disconnected");
}

#[tokio::test]
async fn send_and_the_http_route_share_the_per_principal_post_limit() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@acme.example").await;
    let id = group(&api, &ada, &[]).await;
    assert_eq!(
        invoke(&api, ws_event("$connect", "conn-ada", &[("access_token", &ada)], &[], None)).await.0,
        200
    );
    stack.start_of_next_window(60);
    let limit = [("RATE_LIMIT_WRITES", "2/60")];
    let ws = stack.app_with("WsSendFunction", &limit);
    let http = stack.app_with("PostMessageFunction", &limit);
    let send = |client_id: &str| {
        let frame = send_frame(&id, client_id, "hi");
        LambdaEvent::new(ws_event("send", "conn-ada", &[], &[], Some(&frame)), Context::default())
    };
    assert_eq!(Box::pin(ws_send::handler(&ws, send("l-1"))).await.unwrap().status_code, 201);
    let bearer = format!("Bearer {ada}");
    let body = json!({"client_message_id": "l-2", "body": "hi"}).to_string();
    let request = api_event(
        "POST",
        "/v1/conversations/{id}/messages",
        &[("id", &id)],
        &[],
        &[("authorization", &bearer), ("content-type", "application/json")],
        Some(&body),
    );
    assert_eq!(caas_tests::api::dispatch(&http, "PostMessageFunction", request).await.status(), 201);
    stack.round_trips.reset();
    let refused = Box::pin(ws_send::handler(&ws, send("l-3"))).await.unwrap();
    assert_eq!(refused.status_code, 429, "one counter for the post, over either route");
    assert_eq!(
        stack.round_trips.operations("DynamoDB"),
        ["GetItem", "BatchGetItem", "TransactWriteItems"],
        "the limit rides in the post's own transaction"
    );
    let Some(aws_lambda_events::encodings::Body::Text(text)) = &refused.body else { panic!("a frame") };
    let frame: Value = serde_json::from_str(text).unwrap();
    assert_eq!((frame["type"].as_str(), frame["status"].as_u64()), (Some("error"), Some(429)), "{frame}");
}
