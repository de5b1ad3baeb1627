//! Chat in real time through the local stack (`scripts/run` as a child process,
//! tests/support/running_stack.rs), with real WebSocket clients (tokio-tungstenite) on
//! its WebSocket API and the AWS SDK's API Gateway Management API client on its
//! `@connections` endpoint: `$connect` refuses a missing or invalid access token at the
//! handshake (401); two participants connect, one posts (over the `send` route and over
//! HTTP) and the other receives the messages, in order; `PostToConnection`,
//! `GetConnection` and `DeleteConnection` act on a live connection, and a closed or
//! unknown one is `410 GoneException`.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use caas_tests::running_stack::{EVENTUAL_WITHIN, RunningStack};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in user of the test's tenant.
struct Person {
    id: String,
    token: String,
}

/// A tenant open to signup, its owner (`people[0]`) and `others` members, signed in.
async fn tenant_with_people(stack: &RunningStack, others: usize) -> Vec<Person> {
    let tenant = format!("rt-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let owner_email = "owner@example.com";
    let create = json!({ "action": "create", "tenant_id": tenant, "name": "Realtime", "signup": "open", "owner_email": owner_email });
    let created = stack.invoke("TenantsFunction", &create).await;
    assert_eq!(created.header("x-amz-function-error"), None, "tenant create failed: {:?}", created.json());
    let invitation = created.json()["owner_invitation"]["token"].clone();
    let mut people = Vec::new();
    for n in 0..=others {
        let email = if n == 0 { owner_email.to_owned() } else { format!("member{n}@example.com") };
        let mut registration = json!({ "tenant_id": tenant, "email": email, "password": PASSWORD });
        if n == 0 {
            registration["invitation"] = invitation.clone();
        }
        let registered = stack.api("POST", "/v1/users", None, Some(&registration)).await;
        assert_eq!(registered.status, 201, "{:?}", registered.json());
        let credentials = json!({ "tenant_id": tenant, "email": email, "password": PASSWORD });
        let login = stack.api("POST", "/v1/auth/login", None, Some(&credentials)).await;
        assert_eq!(login.status, 200, "{:?}", login.json());
        let token = login.json()["access_token"].as_str().expect("access token").to_owned();
        let me = stack.api("GET", "/v1/me", Some(&token), None).await;
        let id = me.json()["id"].as_str().expect("the user's id").to_owned();
        people.push(Person { id, token });
    }
    people
}

/// A WebSocket connection to the stack's API, the token in the query.
async fn connect(stack: &RunningStack, token: Option<&str>) -> Result<Socket, WsError> {
    let url = match token {
        Some(token) => format!("{}?access_token={token}", stack.ws),
        None => stack.ws.clone(),
    };
    tokio_tungstenite::connect_async(url).await.map(|(socket, _)| socket)
}

/// A WebSocket connection with the token as `Authorization: Bearer`.
async fn connect_with_header(stack: &RunningStack, token: &str) -> Socket {
    let mut request = stack.ws.as_str().into_client_request().expect("a WebSocket request");
    let bearer = format!("Bearer {token}").parse().expect("a header value");
    request.headers_mut().insert("authorization", bearer);
    tokio_tungstenite::connect_async(request).await.expect("connect with a bearer header").0
}

/// The next text frame, as JSON.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(EVENTUAL_WITHIN, socket.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a WebSocket frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("a JSON frame"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, frame: &Value) {
    socket.send(Message::text(frame.to_string())).await.expect("send a frame");
}

/// The connection's id, as API Gateway tells it: in the `Forbidden` answer to a frame
/// that no route takes (the API has no `$default` route).
async fn connection_id(socket: &mut Socket) -> String {
    send(socket, &json!({ "action": "who-am-i" })).await;
    let answer = next_frame(socket).await;
    assert_eq!(answer["message"], "Forbidden", "{answer}");
    answer["connectionId"].as_str().expect("a connection id").to_owned()
}

/// The Management API client the delivery function builds, on the stack's endpoint.
async fn management_client(stack: &RunningStack) -> aws_sdk_apigatewaymanagement::Client {
    let endpoint = stack.ws.replacen("ws://", "http://", 1);
    let sdk = caas_tests::sdk_config().await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk).endpoint_url(endpoint).build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_refuses_a_missing_or_invalid_token_at_the_handshake() {
    let stack = RunningStack::start();
    let people = tenant_with_people(&stack, 0).await;
    let forged = format!("{}x", &people[0].token[..people[0].token.len() - 1]);
    for token in [None, Some("not-a-token"), Some(forged.as_str())] {
        match connect(&stack, token).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 401, "{token:?}");
                let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("a problem document");
                assert_eq!(body["status"], 401, "{body}");
            }
            Ok(_) => panic!("connected with {token:?}"),
            Err(other) => panic!("{token:?}: {other}"),
        }
    }
    // The same token is accepted, in the query or as a bearer header.
    let mut by_query = connect(&stack, Some(&people[0].token)).await.expect("connect");
    let mut by_header = connect_with_header(&stack, &people[0].token).await;
    assert_ne!(connection_id(&mut by_query).await, connection_id(&mut by_header).await);
    by_query.close(None).await.expect("close");
    by_header.close(None).await.expect("close");
    stack.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_management_api_pushes_describes_and_closes_connections() {
    let mut stack = RunningStack::start();
    let people = tenant_with_people(&stack, 1).await;
    let management = management_client(&stack).await;
    let mut ada = connect(&stack, Some(&people[0].token)).await.expect("ada connects");
    let mut bob = connect(&stack, Some(&people[1].token)).await.expect("bob connects");
    let bob_id = connection_id(&mut bob).await;

    let described = management.get_connection().connection_id(&bob_id).send().await.expect("GetConnection");
    let identity = described.identity().expect("an identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert!(described.connected_at().is_some() && described.last_active_at().is_some());

    let pushed = json!({ "type": "hello", "n": 1 });
    management
        .post_to_connection()
        .connection_id(&bob_id)
        .data(Blob::new(pushed.to_string()))
        .send()
        .await
        .expect("PostToConnection");
    assert_eq!(next_frame(&mut bob).await, pushed, "bob gets exactly the pushed bytes");

    // DeleteConnection closes bob's socket and invokes $disconnect; then the
    // connection is gone for every call, as an unknown one is.
    management.delete_connection().connection_id(&bob_id).send().await.expect("DeleteConnection");
    let closed = tokio::time::timeout(EVENTUAL_WITHIN, bob.next()).await.expect("a close in time");
    assert!(matches!(closed, Some(Ok(Message::Close(_))) | None), "{closed:?}");
    let gone = management
        .post_to_connection()
        .connection_id(&bob_id)
        .data(Blob::new("late"))
        .send()
        .await
        .expect_err("a closed connection");
    assert!(gone.as_service_error().is_some_and(|e| e.is_gone_exception()), "{gone:?}");
    let gone = management.get_connection().connection_id(&bob_id).send().await.expect_err("closed");
    assert!(gone.as_service_error().is_some_and(|e| e.is_gone_exception()), "{gone:?}");
    let unknown = management.delete_connection().connection_id("bm9uZS1zdWNoAAAA").send().await;
    let unknown = unknown.expect_err("an unknown connection");
    assert!(unknown.as_service_error().is_some_and(|e| e.is_gone_exception()), "{unknown:?}");
    stack
        .wait_for_line(EVENTUAL_WITHIN, |l| {
            l.contains("WsDisconnectFunction") && l.contains("ws $disconnect")
        })
        .expect("the close invoked $disconnect");

    // Ada's connection is untouched.
    let ada_id = connection_id(&mut ada).await;
    management
        .post_to_connection()
        .connection_id(&ada_id)
        .data(Blob::new("{\"still\":\"here\"}"))
        .send()
        .await
        .expect("PostToConnection");
    assert_eq!(next_frame(&mut ada).await, json!({ "still": "here" }));
    ada.close(None).await.expect("close");
    stack.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_frame_posts_the_message_and_answers_with_it() {
    let stack = RunningStack::start();
    let people = tenant_with_people(&stack, 1).await;
    let conversation = json!({ "type": "direct", "participants": [people[1].id] });
    let created = stack.api("POST", "/v1/conversations", Some(&people[0].token), Some(&conversation)).await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    let conversation_id = created.json()["conversation_id"].as_str().expect("an id").to_owned();

    let mut ada = connect(&stack, Some(&people[0].token)).await.expect("ada connects");
    let post = json!({ "action": "send", "conversation_id": conversation_id, "client_message_id": "c-1", "body": "hello" });
    send(&mut ada, &post).await;
    let answer = next_frame(&mut ada).await;
    assert_eq!(
        (answer["type"].as_str(), answer["status"].as_u64()),
        (Some("message.posted"), Some(201)),
        "{answer}"
    );
    assert_eq!(answer["message"]["seq"], 1);
    // The same client message id again: the first answer, replayed.
    send(&mut ada, &post).await;
    let again = next_frame(&mut ada).await;
    assert_eq!(
        (again["replayed"].as_bool(), again["message"]["seq"].as_u64()),
        (Some(true), Some(1)),
        "{again}"
    );
    // A bad frame is the route's 400, as a frame.
    send(&mut ada, &json!({ "action": "send", "conversation_id": conversation_id })).await;
    let refused = next_frame(&mut ada).await;
    assert_eq!(
        (refused["type"].as_str(), refused["status"].as_u64()),
        (Some("error"), Some(400)),
        "{refused}"
    );

    let listed = stack
        .api("GET", &format!("/v1/conversations/{conversation_id}/messages"), Some(&people[1].token), None)
        .await;
    let listed = listed.json();
    let bodies: Vec<&str> =
        listed["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["hello"], "{listed}");
    ada.close(None).await.expect("close");
    stack.stop();
}
