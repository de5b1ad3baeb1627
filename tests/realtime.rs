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

/// The next frame that is not a delivered conversation event (those carry an
/// `event_id`): the answer to a frame this client sent.
async fn next_answer(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame.get("event_id").is_none() {
            return frame;
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
    let answer = next_answer(socket).await;
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
    let answer = next_answer(&mut ada).await;
    assert_eq!(
        (answer["type"].as_str(), answer["status"].as_u64()),
        (Some("message.posted"), Some(201)),
        "{answer}"
    );
    assert_eq!(answer["message"]["seq"], 1);
    // The same client message id again: the first answer, replayed.
    send(&mut ada, &post).await;
    let again = next_answer(&mut ada).await;
    assert_eq!(
        (again["replayed"].as_bool(), again["message"]["seq"].as_u64()),
        (Some(true), Some(1)),
        "{again}"
    );
    // A bad frame is the route's 400, as a frame.
    send(&mut ada, &json!({ "action": "send", "conversation_id": conversation_id })).await;
    let refused = next_answer(&mut ada).await;
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

/// Frames one client has seen: answers to its `send` frames, and the conversation
/// events delivered to it (`event_id`), deduplicated by sequence number in the
/// order each number first arrived.
#[derive(Default)]
struct Seen {
    answers: Vec<Value>,
    delivered: Vec<(u64, Value)>,
    duplicates: usize,
}

impl Seen {
    fn take(&mut self, frame: Value, conversation_id: &str) {
        if frame.get("event_id").is_none() {
            self.answers.push(frame);
            return;
        }
        if frame["type"] != "message.posted" || frame["conversation_id"] != conversation_id {
            return;
        }
        let seq = frame["seq"].as_u64().expect("a delivered message carries its seq");
        if self.delivered.iter().any(|(s, _)| *s == seq) {
            self.duplicates += 1;
        } else {
            self.delivered.push((seq, frame));
        }
    }

    fn seqs(&self) -> Vec<u64> {
        self.delivered.iter().map(|(s, _)| *s).collect()
    }

    /// Delivered messages by seq: (message id, body).
    fn messages(&self) -> std::collections::BTreeMap<u64, (String, String)> {
        self.delivered
            .iter()
            .map(|(seq, f)| {
                let text = |k: &str| f["message"][k].as_str().unwrap_or_default().to_owned();
                (*seq, (text("message_id"), text("body")))
            })
            .collect()
    }
}

/// Reads frames until `done`, within the bound.
async fn read_until(
    socket: &mut Socket,
    seen: &mut Seen,
    conversation_id: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let deadline = tokio::time::Instant::now() + 2 * EVENTUAL_WITHIN;
    while !done(seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = tokio::time::timeout(left, next_frame(socket)).await.unwrap_or_else(|_| {
            panic!("gave up waiting; delivered so far {:?}, answers {:?}", seen.seqs(), seen.answers)
        });
        seen.take(frame, conversation_id);
    }
}

async fn conversation(stack: &RunningStack, creator: &Person, others: &[&Person]) -> String {
    let body = match others {
        [other] => json!({ "type": "direct", "participants": [other.id] }),
        _ => {
            json!({ "type": "group", "title": "everyone", "participants": others.iter().map(|p| &p.id).collect::<Vec<_>>() })
        }
    };
    let created = stack.api("POST", "/v1/conversations", Some(&creator.token), Some(&body)).await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    created.json()["conversation_id"].as_str().expect("an id").to_owned()
}

/// An HTTP post, retried with the same client message id while the answer is a 5xx
/// or a 409 (an idempotent retry never posts twice).
async fn post_over_http(
    stack: &RunningStack,
    who: &Person,
    conversation_id: &str,
    client_id: &str,
    text: &str,
) -> u64 {
    let path = format!("/v1/conversations/{conversation_id}/messages");
    let body = json!({ "client_message_id": client_id, "body": text });
    for _ in 0..20 {
        let posted = stack.api("POST", &path, Some(&who.token), Some(&body)).await;
        if posted.status == 201 {
            return posted.json()["seq"].as_u64().expect("a seq");
        }
        assert!(posted.status >= 500 || posted.status == 409, "{} {:?}", posted.status, posted.json());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{client_id} was never posted");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_participants_receive_each_others_messages_in_order() {
    let stack = RunningStack::start();
    let people = tenant_with_people(&stack, 1).await;
    let (ada, bob) = (&people[0], &people[1]);
    let conversation_id = conversation(&stack, ada, &[bob]).await;
    let mut ada_socket = connect(&stack, Some(&ada.token)).await.expect("ada connects");
    let mut bob_socket = connect_with_header(&stack, &bob.token).await;

    // Ada posts over HTTP, then over the send route; bob receives both, in order.
    assert_eq!(post_over_http(&stack, ada, &conversation_id, "m-1", "over HTTP").await, 1);
    let send_frame = json!({ "action": "send", "conversation_id": conversation_id, "client_message_id": "m-2", "body": "over the socket" });
    send(&mut ada_socket, &send_frame).await;
    let mut ada_seen = Seen::default();
    read_until(&mut ada_socket, &mut ada_seen, &conversation_id, |s| !s.answers.is_empty()).await;
    let answer = &ada_seen.answers[0];
    assert_eq!(
        (answer["type"].as_str(), answer["message"]["seq"].as_u64()),
        (Some("message.posted"), Some(2)),
        "{answer}"
    );

    let mut bob_seen = Seen::default();
    read_until(&mut bob_socket, &mut bob_seen, &conversation_id, |s| s.delivered.len() >= 2).await;
    assert_eq!(bob_seen.seqs(), [1, 2], "bob receives ada's messages in order");
    let bodies: Vec<String> = bob_seen.messages().into_values().map(|(_, body)| body).collect();
    assert_eq!(bodies, ["over HTTP", "over the socket"]);
    assert_eq!(
        bob_seen.delivered[0].1["message"]["author_id"],
        ada.id.as_str(),
        "{:?}",
        bob_seen.delivered[0].1
    );

    // Bob answers over HTTP; ada, the sender of the first two, receives all three.
    assert_eq!(post_over_http(&stack, bob, &conversation_id, "m-3", "hi ada").await, 3);
    read_until(&mut ada_socket, &mut ada_seen, &conversation_id, |s| s.seqs().contains(&3)).await;
    assert_eq!(ada_seen.seqs(), [1, 2, 3]);
    assert_eq!(ada_seen.messages()[&3].1, "hi ada");
    ada_socket.close(None).await.expect("close");
    bob_socket.close(None).await.expect("close");
    stack.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_posts_reach_every_receiver_in_one_gapless_order() {
    const CLIENTS: usize = 4;
    const OVER_SOCKET: usize = 3;
    const OVER_HTTP: usize = 2;
    const TOTAL: u64 = (CLIENTS * (OVER_SOCKET + OVER_HTTP)) as u64;
    let stack = RunningStack::start();
    let people = tenant_with_people(&stack, CLIENTS - 1).await;
    let others: Vec<&Person> = people[1..].iter().collect();
    let conversation_id = conversation(&stack, &people[0], &others).await;
    let mut sockets = Vec::new();
    for person in &people {
        sockets.push(connect(&stack, Some(&person.token)).await.expect("connect"));
    }

    // Every client at once: its frames pipelined on its socket while its HTTP posts
    // run beside them; each then reads until it has seen every message.
    let (running, conversation_id) = (&stack, conversation_id.as_str());
    let clients = sockets.into_iter().zip(&people).enumerate().map(|(n, (mut socket, person))| async move {
        let http = async {
            for i in 0..OVER_HTTP {
                let (client_id, text) = (format!("h-{n}-{i}"), format!("{n} http {i}"));
                post_over_http(running, person, conversation_id, &client_id, &text).await;
            }
        };
        let socket_side = async {
            let mut seen = Seen::default();
            let frame = |i: usize| json!({ "action": "send", "conversation_id": conversation_id, "client_message_id": format!("s-{n}-{i}"), "body": format!("{n} socket {i}") });
            for i in 0..OVER_SOCKET {
                send(&mut socket, &frame(i)).await;
            }
            // A send the service could not take yet (a 5xx answer) is sent again,
            // with the same client message id, until every one is confirmed.
            let mut confirmed = std::collections::BTreeSet::new();
            let mut awaited = OVER_SOCKET;
            loop {
                while awaited > 0 {
                    read_until(&mut socket, &mut seen, conversation_id, |s| !s.answers.is_empty()).await;
                    let answer = seen.answers.remove(0);
                    awaited -= 1;
                    match answer["status"].as_u64() {
                        Some(201) => {
                            confirmed.insert(answer["message"]["client_message_id"].as_str().unwrap_or_default().to_owned());
                        }
                        Some(status) if status >= 500 || status == 409 => {}
                        _ => panic!("client {n}: {answer}"),
                    }
                }
                let missing: Vec<usize> =
                    (0..OVER_SOCKET).filter(|i| !confirmed.contains(&format!("s-{n}-{i}"))).collect();
                if missing.is_empty() {
                    break;
                }
                for i in missing {
                    send(&mut socket, &frame(i)).await;
                    awaited += 1;
                }
            }
            read_until(&mut socket, &mut seen, conversation_id, |s| s.delivered.len() as u64 >= TOTAL).await;
            let _ = socket.close(None).await;
            seen
        };
        let ((), seen) = tokio::join!(http, socket_side);
        seen
    });
    let receivers: Vec<Seen> = futures::future::join_all(clients).await;

    let listed = stack
        .api(
            "GET",
            &format!("/v1/conversations/{conversation_id}/messages?limit=100"),
            Some(&people[0].token),
            None,
        )
        .await;
    let stored: std::collections::BTreeMap<u64, (String, String)> = listed.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (m["seq"].as_u64().expect("seq"), (text("message_id"), text("body")))
        })
        .collect();
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=TOTAL).collect::<Vec<_>>(),
        "one gapless order"
    );
    for (n, seen) in receivers.iter().enumerate() {
        assert_eq!(seen.seqs(), (1..=TOTAL).collect::<Vec<_>>(), "receiver {n}: every message, in order");
        assert_eq!(seen.messages(), stored, "receiver {n}: the stored messages");
    }
    let duplicates: usize = receivers.iter().map(|s| s.duplicates).sum();
    println!("{TOTAL} messages to {CLIENTS} receivers; {duplicates} duplicate frame(s) dropped");
    stack.stop();
}
