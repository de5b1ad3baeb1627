// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Real-time delivery against the emulator: chat events go from the outbox
//! through outbox-drain to the delivery queue (FIFO, one group per
//! conversation) and through the deliver function, with the SQS events the
//! queue gives it, to a loopback stand-in for the WebSocket API's
//! `@connections` endpoint (the real SDK client on the wire). Every live
//! connection of every participant gets every frame, in the conversation's
//! order, and no one else; a `410 Gone` connection is deleted; a failed push
//! fails only its event, which is delivered again; removed participants get
//! nothing new; round trips are counted. Presence is read from the same
//! connection items.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use caas_tests::api::{Api, user_id as sub, ws_event};
use caas_tests::connections::ConnectionsEndpoint;
use caas_tests::triggers::{QueueTrigger, StreamTrigger, lambda_event};
use caas_tests::*;
use serde_json::{Value, json};

struct Live<'a> {
    stack: &'a TestStack,
    api: Api<'a>,
    stream: StreamTrigger,
    events: QueueTrigger,
    delivery: QueueTrigger,
    endpoint: ConnectionsEndpoint,
    deliver: caas::App,
    client: aws_sdk_apigatewaymanagement::Client,
}

impl<'a> Live<'a> {
    async fn new(stack: &'a TestStack) -> Self {
        let endpoint = ConnectionsEndpoint::start().await;
        let url = endpoint.url();
        Self {
            api: Api::new(stack),
            stream: StreamTrigger::new(stack, "OutboxDrainFunction"),
            events: QueueTrigger::new(stack, "EventsQueue"),
            delivery: QueueTrigger::new(stack, "DeliveryQueue"),
            deliver: stack.app_with("DeliverFunction", &[("CONNECTIONS_ENDPOINT", &url)]),
            client: stack.connections_client("DeliverFunction", &url),
            endpoint,
            stack,
        }
    }

    async fn connect(&self, connection_id: &str, token: &str) {
        let app = self.api.app("WsConnectFunction");
        let event = ws_event("$connect", connection_id, &[("access_token", token)], &[], None);
        let response = ws_connect::handler(&app, lambda_event(event)).await.expect("$connect answers");
        assert_eq!(response.status_code, 200);
    }

    async fn call(
        &self,
        function: &str,
        method: &str,
        route: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        parts(
            &self.api.route(function, &format!("{method} {route}"), params, &[], token, body.as_ref()).await,
        )
    }

    async fn post(&self, token: &str, id: &str, text: &str) -> u64 {
        let body = json!({"client_message_id": uuid::Uuid::new_v4().to_string(), "body": text});
        let (status, message) = self
            .call(
                "PostMessageFunction",
                "POST",
                "/v1/conversations/{id}/messages",
                &[("id", id)],
                token,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{message}");
        message["seq"].as_u64().unwrap()
    }

    /// The new outbox items through outbox-drain (the events queue emptied:
    /// the audit writer's), leaving the delivery queue's messages.
    async fn drain(&self) {
        let drain = self.stack.app("OutboxDrainFunction");
        let response =
            outbox_drain::handler(&drain, StreamTrigger::event(self.stream.poll().await)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        self.events.drain().await;
    }

    /// One batch of the delivery queue through the deliver function, settled
    /// as Lambda would; `None` when the queue has nothing visible.
    async fn deliver_batch(&self) -> Option<SqsBatchResponse> {
        let batch = self.delivery.receive(10).await;
        if batch.records.is_empty() {
            return None;
        }
        let response = deliver::handler(&self.deliver, &self.client, lambda_event(batch.clone()))
            .await
            .expect("deliver answers");
        self.delivery.settle(&batch, &response).await;
        Some(response)
    }

    /// Drains the outbox, then delivers until the delivery queue is empty.
    async fn pump(&self) {
        self.drain().await;
        while let Some(response) = self.deliver_batch().await {
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
        }
    }

    /// `(type, seq)` of the frames `connection_id` got, in order.
    fn received(&self, connection_id: &str) -> Vec<(String, Option<u64>)> {
        self.endpoint
            .frames()
            .get(connection_id)
            .map(|frames| {
                frames.iter().map(|f| (f["type"].as_str().unwrap().to_owned(), f["seq"].as_u64())).collect()
            })
            .unwrap_or_default()
    }
}

impl Live<'_> {
    /// Access tokens of ada, bob, cy and dan of acme.
    async fn people(&self) -> [String; 4] {
        let mut tokens = Vec::new();
        for name in ["ada", "bob", "cy", "dan"] {
            tokens.push(self.api.token("acme", &format!("{name}@acme.example")).await);
        }
        tokens.try_into().expect("four tokens")
    }

    /// ada, bob, cy and dan; a group of ada, bob and cy; ada live on one
    /// device, bob on two, cy offline, dan (no participant) live on one.
    async fn room(&self) -> ([String; 4], String) {
        let people = self.people().await;
        let [ada, bob, cy, dan] = &people;
        let id = self.api.group(ada, "live", &[&sub(bob), &sub(cy)]).await;
        for (connection, token) in [("conn-a1", ada), ("conn-b1", bob), ("conn-b2", bob), ("conn-d1", dan)] {
            self.connect(connection, token).await;
        }
        (people, id)
    }
}

fn frame(kind: &str, seq: u64) -> (String, Option<u64>) {
    (kind.to_owned(), Some(seq))
}

#[tokio::test]
async fn every_live_connection_of_every_participant_gets_every_frame_in_order_and_no_one_else() {
    let stack = TestStack::new().await;
    let live = Live::new(&stack).await;
    let ([ada, bob, _cy, dan], id) = live.room().await;
    live.pump().await;
    assert_eq!(live.received("conn-a1"), [("conversation.created".to_owned(), None)]);
    live.endpoint.take_pushes();

    // One message: its round trips and pushes.
    assert_eq!(live.post(&ada, &id, "first").await, 1);
    live.drain().await;
    stack.round_trips.reset();
    let response = live.deliver_batch().await.expect("a delivery message");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut dynamodb = stack.round_trips.operations("DynamoDB");
    dynamodb.sort();
    assert_eq!(
        dynamodb,
        ["BatchGetItem", "Query", "Query", "Query", "Query"],
        "the conversation's participants, the message, one connection listing per participant (3)"
    );
    assert_eq!(
        stack.round_trips.operations("ApiGatewayManagementApi"),
        ["PostToConnection"; 3],
        "one push per live connection of a participant"
    );
    let mut pushed: Vec<String> = live.endpoint.take_pushes().into_iter().map(|(id, _)| id).collect();
    pushed.sort();
    assert_eq!(pushed, ["conn-a1", "conn-b1", "conn-b2"]);
    let frames = live.endpoint.frames();
    let first = frames["conn-b1"].last().unwrap();
    assert_eq!(first["type"], "message.posted");
    assert_eq!((first["conversation_id"].as_str(), first["seq"].as_u64()), (Some(id.as_str()), Some(1)));
    assert_eq!(first["message"]["body"], "first", "the text, read from the message item");
    assert_eq!(first["message"]["author_id"], sub(&ada).as_str());
    assert_eq!(first["last_seq"], 1);
    assert!(first["event_id"].is_string());

    // More posts, an edit and a tombstone: every connection sees them in order.
    assert_eq!(live.post(&bob, &id, "second").await, 2);
    assert_eq!(live.post(&ada, &id, "third").await, 3);
    let edit = json!({"body": "second, edited"});
    let (status, _) = live
        .call(
            "EditMessageFunction",
            "PATCH",
            "/v1/conversations/{id}/messages/{seq}",
            &[("id", &id), ("seq", "2")],
            &bob,
            Some(edit),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = live
        .call(
            "DeleteMessageFunction",
            "DELETE",
            "/v1/conversations/{id}/messages/{seq}",
            &[("id", &id), ("seq", "1")],
            &ada,
            None,
        )
        .await;
    assert_eq!(status, 204);
    live.pump().await;
    let expected = [
        ("conversation.created".to_owned(), None),
        frame("message.posted", 1),
        frame("message.posted", 2),
        frame("message.posted", 3),
        frame("message.edited", 2),
        frame("message.deleted", 1),
    ];
    for connection in ["conn-a1", "conn-b1", "conn-b2"] {
        assert_eq!(live.received(connection), expected, "{connection}");
    }
    assert!(live.received("conn-d1").is_empty(), "a non-participant gets nothing");
    let frames = live.endpoint.frames();
    let edited = &frames["conn-a1"][4];
    assert_eq!(edited["message"]["body"], "second, edited");
    assert!(edited["message"]["edited_at"].is_string());
    let deleted = &frames["conn-a1"][5];
    assert_eq!(
        (deleted["message"]["body"].clone(), deleted["message"]["deleted"].clone()),
        (Value::Null, json!(true))
    );
    assert_eq!(deleted["actor"]["id"], sub(&ada).as_str());

    // dan joins: from then on he gets the conversation's frames; bob is removed:
    // he learns it, then gets nothing new.
    let add = json!({"user_ids": [sub(&dan)]});
    let (status, _) = live
        .call(
            "AddParticipantsFunction",
            "POST",
            "/v1/conversations/{id}/participants",
            &[("id", &id)],
            &ada,
            Some(add),
        )
        .await;
    assert_eq!(status, 200);
    live.pump().await;
    let bob_id = sub(&bob);
    let (status, _) = live
        .call(
            "RemoveParticipantFunction",
            "DELETE",
            "/v1/conversations/{id}/participants/{user_id}",
            &[("id", &id), ("user_id", &bob_id)],
            &ada,
            None,
        )
        .await;
    assert_eq!(status, 204);
    live.pump().await;
    assert_eq!(live.post(&ada, &id, "after bob").await, 4);
    live.pump().await;
    assert_eq!(
        live.received("conn-d1"),
        [
            ("conversation.participants_added".to_owned(), None),
            ("conversation.participant_removed".to_owned(), None),
            frame("message.posted", 4),
        ]
    );
    let bobs = live.received("conn-b1");
    assert_eq!(
        bobs[6..],
        [
            ("conversation.participants_added".to_owned(), None),
            ("conversation.participant_removed".to_owned(), None)
        ]
    );
    assert_eq!(live.endpoint.frames()["conn-b1"].last().unwrap()["user_id"], bob_id.as_str());
    assert_eq!(live.received("conn-b2"), bobs, "nothing new for a removed participant");
    assert_eq!(live.received("conn-a1").last(), Some(&frame("message.posted", 4)));

    // No frame carried more than ids and the messages' own view.
    let logs = captured_logs();
    assert!(!logs.contains("second, edited") && !logs.contains("after bob"), "no message text in logs");
}

#[tokio::test]
async fn a_gone_connection_is_deleted_and_a_failed_push_fails_only_its_event_until_delivered() {
    let stack = TestStack::new().await;
    let live = Live::new(&stack).await;
    let ada = live.api.token("acme", "ada@acme.example").await;
    let bob = live.api.token("acme", "bob@acme.example").await;
    let cy = live.api.token("acme", "cy@acme.example").await;
    let id = live.api.group(&ada, "live", &[&sub(&bob)]).await;
    // A conversation bob is not in: his failing connection does not hold it up.
    let other = live.api.group(&ada, "live", &[&sub(&cy)]).await;
    for (connection, token) in [("conn-a1", &ada), ("conn-b1", &bob), ("conn-b2", &bob)] {
        live.connect(connection, token).await;
    }
    live.pump().await;

    // conn-b2 is gone at API Gateway (its $disconnect was lost): deleted on first push.
    live.endpoint.gone("conn-b2");
    live.post(&ada, &id, "one").await;
    live.pump().await;
    let connections = scan_raw_items(&stack, "kind = :c", &[(":c", "connection")]).await;
    let mut ids: Vec<&str> =
        connections.iter().map(|c| c["connection_id"].as_s().unwrap().as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["conn-a1", "conn-b1"], "the gone connection's item is deleted");
    live.endpoint.take_pushes();
    live.post(&ada, &id, "two").await;
    live.pump().await;
    assert!(
        !live.endpoint.take_pushes().iter().any(|(c, _)| c == "conn-b2"),
        "a deleted connection is not pushed to again"
    );

    // conn-b1 fails: the others still get the frame; the event fails, and
    // (FIFO) so does the rest of its conversation, but not the other conversation.
    live.endpoint.failing("conn-b1");
    live.post(&ada, &id, "three").await;
    live.post(&ada, &id, "four").await;
    live.post(&cy, &other, "elsewhere").await;
    live.drain().await;
    let response = live.deliver_batch().await.expect("a batch");
    assert_eq!(response.batch_item_failures.len(), 2, "three and four: {response:?}");
    let in_id = |connection: &str| -> Vec<(String, Option<u64>)> {
        let frames = live.endpoint.frames().get(connection).cloned().unwrap_or_default();
        frames
            .iter()
            .filter(|f| f["conversation_id"] == id.as_str() && f["type"] == "message.posted")
            .map(|f| (f["type"].as_str().unwrap().to_owned(), f["seq"].as_u64()))
            .collect()
    };
    let posted = |seqs: &[u64]| -> Vec<(String, Option<u64>)> {
        seqs.iter().map(|s| frame("message.posted", *s)).collect()
    };
    assert_eq!(in_id("conn-a1"), posted(&[1, 2, 3]), "the others got the failed event's frame");
    assert_eq!(in_id("conn-b1"), posted(&[1, 2]));
    let elsewhere = live.endpoint.frames()["conn-a1"]
        .iter()
        .any(|f| f["conversation_id"] == other.as_str() && f["seq"] == 1);
    assert!(elsewhere, "the other conversation is not held up");

    // Recovered: the failed events come again, to every connection; the
    // duplicate carries the same event id and sequence number.
    live.endpoint.recover("conn-b1");
    while let Some(response) = live.deliver_batch().await {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    assert_eq!(in_id("conn-b1"), posted(&[1, 2, 3, 4]), "in order, nothing lost");
    assert_eq!(in_id("conn-a1"), posted(&[1, 2, 3, 3, 4]), "at least once");
    let a1: Vec<Value> = live.endpoint.frames()["conn-a1"].clone();
    let threes: Vec<&Value> =
        a1.iter().filter(|f| f["conversation_id"] == id.as_str() && f["seq"] == 3).collect();
    assert_eq!(threes.len(), 2, "at least once: the retried frame again");
    assert_eq!(threes[0]["event_id"], threes[1]["event_id"], "a duplicate a client drops by event id");
}

#[tokio::test]
async fn outbox_drain_routes_chat_events_to_the_delivery_queue_and_marks_what_every_queue_accepted() {
    let stack = TestStack::new().await;
    let live = Live::new(&stack).await;
    let ada = live.api.token("acme", "ada@acme.example").await;
    let bob = live.api.token("acme", "bob@acme.example").await;
    live.drain().await;
    let id = live.api.group(&ada, "live", &[&sub(&bob)]).await;
    live.post(&ada, &id, "routed").await;
    let records = live.stream.poll().await;
    let events = caas_tests::triggers::outbox_events(&records);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["conversation.created", "message.posted"]);

    // The delivery queue refuses (an unknown queue): the events queue got them,
    // but nothing is marked, and every record is retried.
    let missing =
        format!("{}-missing.fifo", stack.stack.queue_url("DeliveryQueue").unwrap().trim_end_matches(".fifo"));
    let down = stack.unattributed_app_with("OutboxDrainFunction", &[("DELIVERY_QUEUE_URL", &missing)]);
    let response = outbox_drain::handler(&down, StreamTrigger::event(records.clone())).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 2, "{response:?}");
    assert_eq!(live.events.drain().await.len(), 2, "the events queue accepted them");
    for event in &events {
        let (_, published) =
            caas::store::outbox::find(&stack.clients.dynamodb, &stack.table(), "acme", &event.event_id)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(published, None, "not marked until every queue accepted it");
    }

    // The retry sends to both again: the delivery queue gets them, grouped by
    // conversation, in order (the events queue drops the duplicates within
    // its 5 minutes, and the audit writer is idempotent besides).
    let drain = stack.app("OutboxDrainFunction");
    let response = outbox_drain::handler(&drain, StreamTrigger::event(records)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    live.events.drain().await;
    let delivered = live.delivery.drain().await;
    let routed: Vec<(String, String)> = delivered
        .iter()
        .map(|m| (m.attributes["MessageGroupId"].clone(), m.attributes["MessageDeduplicationId"].clone()))
        .collect();
    let group_id = format!("acme:{id}");
    assert_eq!(
        routed,
        [(group_id.clone(), events[0].event_id.clone()), (group_id, events[1].event_id.clone())]
    );
    for event in &events {
        let (_, published) =
            caas::store::outbox::find(&stack.clients.dynamodb, &stack.table(), "acme", &event.event_id)
                .await
                .unwrap()
                .unwrap();
        assert!(published.is_some());
    }
    // Events no one watches live do not go to the delivery queue.
    assert!(
        !caas::outbox::routes::destinations("user.registered")
            .contains(&caas::outbox::routes::Destination::Delivery)
    );
}

#[tokio::test]
async fn the_sample_runs_through_the_deliver_function() {
    let stack = TestStack::new().await;
    let live = Live::new(&stack).await;
    let ada = live.api.token("acme", "ada@acme.example").await;
    let id = live.api.group(&ada, "live", &[]).await;
    live.post(&ada, &id, "Hello, live").await;
    live.connect("conn-a1", &ada).await;
    let text =
        event_file("deliver.json").replace("{{CONVERSATION_ID}}", &id).replace("{{USER_ID}}", &sub(&ada));
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/deliver.json: {e}"));
    let response = deliver::handler(&live.deliver, &live.client, lambda_event(event)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let frames = live.endpoint.frames();
    assert_eq!(frames["conn-a1"][0]["message"]["body"], "Hello, live");
}

#[tokio::test]
async fn presence_is_read_from_live_connections_by_participants_only() {
    let stack = TestStack::new().await;
    let live = Live::new(&stack).await;
    let ([ada, bob, cy, dan], id) = live.room().await;

    let presence = |token: String| {
        let live = &live;
        let id = id.clone();
        async move {
            live.call(
                "GetPresenceFunction",
                "GET",
                "/v1/conversations/{id}/presence",
                &[("id", &id)],
                &token,
                None,
            )
            .await
        }
    };
    stack.round_trips.reset();
    let (status, body) = presence(cy.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stack.round_trips.operations("DynamoDB"),
        ["Query"; 4],
        "the conversation's participants, then one connection listing each"
    );
    let online: std::collections::BTreeMap<String, bool> = body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user_id"].as_str().unwrap().to_owned(), p["online"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        online,
        [(sub(&ada), true), (sub(&bob), true), (sub(&cy), false)].into_iter().collect(),
        "dan's connection is not the conversation's"
    );
    assert_eq!(presence(dan.clone()).await.0, 404, "partners only");

    // A disconnect ends it (nothing is written in between; an expired item
    // TTL has not deleted yet counts as gone: store::connections::live_ids).
    let app = live.api.app("WsDisconnectFunction");
    let event = ws_event("$disconnect", "conn-a1", &[], &[], None);
    assert_eq!(ws_disconnect::handler(&app, lambda_event(event)).await.unwrap().status_code, 200);
    let (_, body) = presence(bob.clone()).await;
    let ada_online =
        body["participants"].as_array().unwrap().iter().find(|p| p["user_id"] == sub(&ada).as_str()).unwrap()
            ["online"]
            .clone();
    assert_eq!(ada_online, json!(false), "{body}");
    // API Gateway's two hours end the rest, though TTL has deleted nothing yet.
    stack.clock.advance(time::Duration::hours(2));
    let bob = live.api.token("acme", "bob@acme.example").await;
    let (_, body) = presence(bob).await;
    assert!(body["participants"].as_array().unwrap().iter().all(|p| p["online"] == false), "{body}");
    assert_eq!(scan_raw_items(&stack, "kind = :c", &[(":c", "connection")]).await.len(), 3, "still stored");
    let client = client_token(&stack, "acme", caas::auth::Role::Member).await;
    assert_eq!(presence(client).await.0, 403);
}

#[test]
fn the_connections_endpoint_and_its_grant_name_the_websocket_stage() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let stage = template["Resources"]["WebSocketStage"]["Properties"]["StageName"].as_str().unwrap();
    let deliver = serde_norway::to_string(&template["Resources"]["DeliverFunction"]["Properties"]).unwrap();
    assert!(deliver.contains(&format!(".${{AWS::URLSuffix}}/{stage}\n")), "CONNECTIONS_ENDPOINT: {deliver}");
    assert!(
        deliver.contains(&format!("${{WebSocketApi}}/{stage}/POST/@connections/*")),
        "the grant: {deliver}"
    );
}
