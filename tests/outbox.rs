//! The transactional outbox and outbox-drain against the emulator: every auth
//! operation writes exactly its events in its own transaction; the drain
//! publishes them to the FIFO queue in per-tenant order and marks them; an
//! unreachable queue leaves them pending for the sweep.

use caas::outbox::OutboxEvent;
use caas::outbox::drain::{Invocation, SweepRequest};
use caas_tests::triggers::{QueueTrigger, StreamTrigger, lambda_event, outbox_events};
use caas_tests::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const PASSWORD: &str = "correct horse battery staple";

async fn call(stack: &TestStack, function: &str, path: &str, body: Value) -> (u16, Value) {
    // Registrations of a hundred users come from one address: above the default
    // per-address limit (tests/limits.rs tests that).
    let app =
        stack.app_with(function, &[("LOCKOUT_THRESHOLD", "3"), ("RATE_LIMIT_REGISTER_IP", "1000/3600")]);
    let request = api_request(
        "POST",
        path,
        &[("content-type", "application/json"), ("x-correlation-id", "corr-1")],
        Some(&body.to_string()),
    );
    let response = match function {
        "RegisterFunction" => register::handler(&app, request).await,
        "LoginFunction" => login::handler(&app, request).await,
        "RefreshFunction" => refresh::handler(&app, request).await,
        "LogoutFunction" => logout::handler(&app, request).await,
        other => panic!("{other}"),
    };
    parts(&response.unwrap())
}

async fn register(stack: &TestStack, tenant: &str, email: &str) -> (u16, Value) {
    call(
        stack,
        "RegisterFunction",
        "/v1/users",
        json!({"tenant_id": tenant, "email": email, "password": PASSWORD}),
    )
    .await
}

async fn login(stack: &TestStack, tenant: &str, email: &str, password: &str) -> (u16, Value) {
    call(
        stack,
        "LoginFunction",
        "/v1/auth/login",
        json!({"tenant_id": tenant, "email": email, "password": password}),
    )
    .await
}

async fn is_stored(stack: &TestStack, event: &OutboxEvent) -> bool {
    caas::store::outbox::find(&stack.clients.dynamodb, &stack.table(), &event.tenant_id, &event.event_id)
        .await
        .unwrap()
        .is_some_and(|(stored, _)| &stored == event)
}

/// Outbox items in the table, but for the tests' setup (tenant creation).
async fn outbox_items(stack: &TestStack) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let scan = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.table())
        .filter_expression("kind = :outbox AND correlation_id <> :setup")
        .expression_attribute_values(":outbox", AttributeValue::S("outbox".into()))
        .expression_attribute_values(":setup", AttributeValue::S(SETUP_CORRELATION_ID.into()))
        .send()
        .await
        .unwrap();
    scan.items().len()
}

/// The tests' tenants, created open to signup through the tenants service,
/// with their creation events already published (stream seen, queue
/// emptied), so each test observes only the events of its own operations.
async fn with_tenants(stack: &TestStack, stream: &StreamTrigger, tenants: &[&str]) {
    for tenant in tenants {
        open_tenant(stack, tenant).await;
    }
    let drain = stack.app("OutboxDrainFunction");
    let published = outbox_drain::handler(&drain, StreamTrigger::event(stream.poll().await)).await.unwrap();
    assert!(published.batch_item_failures.is_empty());
    QueueTrigger::new(stack, "EventsQueue").drain().await;
}

/// The `sub` of an access token (its user id).
fn subject(access_token: &str) -> String {
    use base64::Engine;
    let claims = access_token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap())
            .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// The outbox events committed since the last call, each checked against
/// its stored item.
async fn new_events(stack: &TestStack, trigger: &StreamTrigger) -> Vec<OutboxEvent> {
    let events = outbox_events(&trigger.poll().await);
    for event in &events {
        assert!(is_stored(stack, event).await, "{} streamed but not stored", event.event_type);
    }
    events
}

fn types(events: &[OutboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn every_auth_operation_writes_exactly_its_events() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    with_tenants(&stack, &stream, &["acme"]).await;

    let (status, user) = register(&stack, "acme", "ada@example.com").await;
    assert_eq!(status, 201);
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["user.registered"]);
    let user_id = user["user_id"].as_str().unwrap();
    let registered = &events[0];
    assert_eq!(
        (registered.tenant_id.as_str(), registered.aggregate_type.as_str(), registered.aggregate_id.as_str()),
        ("acme", "user", user_id)
    );
    assert_eq!(registered.correlation_id, "corr-1");
    assert_eq!(registered.schema_version, 1);
    assert_eq!(
        registered.payload,
        json!({"user_id": user_id, "role": "member", "invitation_id": null, "actor": {"type": "user", "id": user_id}})
    );
    assert!(caas::ids::is_valid_id(&registered.event_id));

    // A failed transaction (duplicate email) leaves no outbox item.
    // (The emulator streams the puts of a cancelled transaction, DynamoDB
    // does not: what counts is that no outbox item was stored.)
    assert_eq!(register(&stack, "acme", "ada@example.com").await.0, 409);
    for event in outbox_events(&stream.poll().await) {
        assert!(!is_stored(&stack, &event).await, "a cancelled transaction stored {}", event.event_type);
    }
    assert_eq!(outbox_items(&stack).await, 1);

    let (status, tokens) = login(&stack, "acme", "ada@example.com", PASSWORD).await;
    assert_eq!(status, 200);
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["user.login_succeeded"]);
    assert_eq!(events[0].payload["user_id"], user_id);
    let session_id = events[0].payload["session_id"].as_str().unwrap().to_owned();

    // Unknown users write nothing; wrong passwords count up to the lock.
    assert_eq!(login(&stack, "acme", "nobody@example.com", PASSWORD).await.0, 401);
    assert!(new_events(&stack, &stream).await.is_empty());
    for expected in
        [&["user.login_failed"][..], &["user.login_failed"], &["user.login_failed", "user.account_locked"]]
    {
        assert_eq!(login(&stack, "acme", "ada@example.com", "wrong password!!").await.0, 401);
        let events = new_events(&stack, &stream).await;
        let mut got = types(&events);
        got.sort();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
    // Locked: refused without a state change, so without an event.
    assert_eq!(login(&stack, "acme", "ada@example.com", PASSWORD).await.0, 401);
    assert!(new_events(&stack, &stream).await.is_empty());

    let token = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) =
        call(&stack, "RefreshFunction", "/v1/auth/refresh", json!({"refresh_token": token})).await;
    assert_eq!(status, 200);
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["session.refreshed"]);
    assert_eq!(
        (events[0].aggregate_type.as_str(), events[0].aggregate_id.as_str()),
        ("session", session_id.as_str())
    );

    // Reuse of the spent token revokes the family.
    assert_eq!(
        call(&stack, "RefreshFunction", "/v1/auth/refresh", json!({"refresh_token": token})).await.0,
        401
    );
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["session.revoked"]);
    assert_eq!(events[0].payload["reason"], "refresh_token_reuse");

    // Logout of a revoked session changes nothing: no event.
    let rotated = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(
        call(&stack, "LogoutFunction", "/v1/auth/logout", json!({"refresh_token": rotated})).await.0,
        204
    );
    assert!(new_events(&stack, &stream).await.is_empty());

    // Logout of a live session.
    stack.clock.advance(time::Duration::hours(1));
    let (_, tokens) = login(&stack, "acme", "ada@example.com", PASSWORD).await;
    assert_eq!(types(&new_events(&stack, &stream).await), ["user.login_succeeded"]);
    let live = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        call(&stack, "LogoutFunction", "/v1/auth/logout", json!({"refresh_token": live})).await.0,
        204
    );
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["session.revoked"]);
    assert_eq!(events[0].payload["reason"], "logout");

    // No payload carries a secret.
    for event in outbox_events(&stream.replay().await) {
        let text = event.payload.to_string();
        for secret in [PASSWORD, "wrong password!!", token, rotated, live, "argon2", "ada@example.com"] {
            assert!(!text.contains(secret), "{} payload leaks a secret: {text}", event.event_type);
        }
    }
}

/// Runs the drain over everything new on the stream; returns the failed sequence numbers.
async fn drain(app: &caas::App, stream: &StreamTrigger) -> Vec<String> {
    let records = stream.poll().await;
    let response = outbox_drain::handler(app, StreamTrigger::event(records)).await.expect("drain answers");
    response.batch_item_failures.into_iter().map(|f| f.item_identifier.unwrap()).collect()
}

async fn published_at(stack: &TestStack, event: &OutboxEvent) -> Option<String> {
    let (_, published) =
        caas::store::outbox::find(&stack.clients.dynamodb, &stack.table(), &event.tenant_id, &event.event_id)
            .await
            .unwrap()
            .expect("outbox item exists");
    published
}

#[tokio::test]
async fn drain_publishes_per_tenant_in_order_and_marks_published() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    with_tenants(&stack, &stream, &["acme", "globex"]).await;
    for tenant in ["acme", "globex"] {
        for user in ["a@example.com", "b@example.com"] {
            register(&stack, tenant, user).await;
            login(&stack, tenant, user, PASSWORD).await;
            login(&stack, tenant, user, "wrong password!!").await;
        }
    }
    let written: Vec<OutboxEvent> =
        outbox_events(&stream.replay().await).into_iter().filter(|e| !is_setup(e)).collect();
    assert_eq!(written.len(), 12);

    let app = stack.app("OutboxDrainFunction");
    assert!(drain(&app, &stream).await.is_empty());

    let messages = queue.drain().await;
    assert_eq!(messages.len(), written.len(), "each event published once");
    let mut by_group: BTreeMap<String, Vec<OutboxEvent>> = BTreeMap::new();
    for message in &messages {
        let event: OutboxEvent = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
        assert_eq!(message.attributes["MessageGroupId"], event.tenant_id);
        assert_eq!(message.attributes["MessageDeduplicationId"], event.event_id);
        assert!(written.contains(&event), "the body is the envelope as written");
        by_group.entry(event.tenant_id.clone()).or_default().push(event);
    }
    assert_eq!(by_group.keys().collect::<Vec<_>>(), ["acme", "globex"]);
    for (tenant, events) in &by_group {
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let mut ordered = ids.clone();
        ordered.sort();
        assert_eq!(ids, ordered, "{tenant}: queue order is creation order");
        let written_order: Vec<&str> =
            written.iter().filter(|e| &e.tenant_id == tenant).map(|e| e.event_id.as_str()).collect();
        let mut written_sorted = written_order.clone();
        written_sorted.sort();
        assert_eq!(ids, written_sorted);
    }
    for event in &written {
        assert!(published_at(&stack, event).await.is_some(), "{} marked published", event.event_type);
    }

    // Nothing is left pending: the sweep finds nothing, even long after.
    stack.clock.advance(time::Duration::hours(1));
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!((report.found, report.published, report.failed), (0, 0, 0));

    // Draining the same records again publishes nothing new (FIFO dedup by
    // event id); the items stay published and out of the pending index.
    let records = stream.replay().await;
    // Every event published so far: the test's, and the tenants' creation.
    let published = outbox_events(&records);
    let replay = outbox_drain::handler(&app, StreamTrigger::event(records)).await.unwrap();
    assert!(replay.batch_item_failures.is_empty());
    // Publishing twice is allowed (FIFO dedup by event id drops copies within
    // 5 minutes); only copies of published events may appear.
    for message in queue.drain().await {
        assert!(published.iter().any(|e| e.event_id == message.attributes["MessageDeduplicationId"]));
    }
    for event in &written {
        assert!(published_at(&stack, event).await.is_some(), "{} still published", event.event_type);
        assert!(
            is_stored(&stack, event).await,
            "{}: the re-marked item keeps its envelope",
            event.event_type
        );
    }
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!(report.found, 0);
}

/// The drain's app with its SQS client pointed at a closed port, no retries.
fn unreachable_sqs(stack: &TestStack) -> caas::App {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut app = stack.app("OutboxDrainFunction");
    app.clients.sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    app
}

#[tokio::test]
async fn unreachable_queue_fails_the_records_and_the_sweep_publishes_later() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    with_tenants(&stack, &stream, &["acme"]).await;
    register(&stack, "acme", "a@example.com").await;
    register(&stack, "acme", "b@example.com").await;
    login(&stack, "acme", "a@example.com", PASSWORD).await;

    let records = stream.poll().await;
    let sequence_numbers: Vec<String> =
        records.iter().map(|r| r.change.sequence_number.clone().unwrap()).collect();
    let events = outbox_events(&records);
    assert_eq!(events.len(), 3);

    let down = unreachable_sqs(&stack);
    let response = outbox_drain::handler(&down, StreamTrigger::event(records))
        .await
        .expect("a partial answer, not an error");
    let mut failed: Vec<String> =
        response.batch_item_failures.into_iter().map(|f| f.item_identifier.unwrap()).collect();
    failed.sort();
    let mut expected = sequence_numbers.clone();
    expected.sort();
    assert_eq!(failed, expected, "every record reported by its sequence number");
    for event in &events {
        assert_eq!(published_at(&stack, event).await, None, "nothing marked published");
    }
    assert!(queue.drain().await.is_empty());

    // The sweep leaves young items to the stream...
    let app = stack.app("OutboxDrainFunction");
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!(report.found, 0, "within the grace period");
    // ...and while the queue is still down, fails without marking anything.
    stack.clock.advance(time::Duration::minutes(10));
    let report = outbox_drain::sweep(&down, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!((report.found, report.published, report.failed), (3, 0, 3));

    // Once the queue is back, the scheduled sweep publishes them.
    let sweep_input: Invocation = serde_json::from_str(r#"{"action":"sweep","grace_seconds":300}"#).unwrap();
    let output = outbox_drain::dispatch(&app, lambda_event(sweep_input)).await.unwrap();
    let report = serde_json::to_value(&output).unwrap();
    assert_eq!(
        (report["found"].as_u64(), report["published"].as_u64(), report["failed"].as_u64()),
        (Some(3), Some(3), Some(0))
    );
    let messages = queue.drain().await;
    let mut ids: Vec<String> =
        messages.iter().map(|m| m.attributes["MessageDeduplicationId"].clone()).collect();
    ids.sort();
    let mut expected: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for event in &events {
        assert!(published_at(&stack, event).await.is_some());
    }
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!(report.found, 0, "published items leave the pending index");
}

/// Each event goes to its queues (the events queue, and the search queue
/// for what the index follows); it is marked only once every one took it.
#[tokio::test]
async fn an_event_is_marked_only_when_every_queue_it_goes_to_took_it() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    with_tenants(&stack, &stream, &["acme"]).await;
    register(&stack, "acme", "a@example.com").await;
    login(&stack, "acme", "a@example.com", PASSWORD).await;
    let records = stream.poll().await;
    let events = outbox_events(&records);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["user.registered", "user.login_succeeded"]);

    let search_url = stack.stack.queue_url("SearchQueue").expect("SearchQueue").to_owned();
    let missing = search_url.replace("SearchQueue", "NoSuchQueue");
    let app = stack.unattributed_app_with("OutboxDrainFunction", &[("SEARCH_QUEUE_URL", &missing)]);
    let response = outbox_drain::handler(&app, StreamTrigger::event(records.clone())).await.unwrap();
    let registered = records
        .iter()
        .find(|r| {
            outbox_events(std::slice::from_ref(r)).first().is_some_and(|e| e.event_type == "user.registered")
        })
        .and_then(|r| r.change.sequence_number.clone());
    let failed: Vec<Option<String>> =
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    assert_eq!(failed, [registered], "the registration, which the search queue did not take");
    assert_eq!(published_at(&stack, &events[0]).await, None);
    assert!(published_at(&stack, &events[1]).await.is_some(), "the login goes to the events queue only");

    let drain = stack.app("OutboxDrainFunction");
    let retried = outbox_drain::handler(&drain, StreamTrigger::event(records)).await.unwrap();
    assert!(retried.batch_item_failures.is_empty());
    assert!(published_at(&stack, &events[0]).await.is_some());
    let indexed = QueueTrigger::new(&stack, "SearchQueue").drain().await;
    assert_eq!(indexed.len(), 1);
    assert_eq!(indexed[0].attributes["MessageDeduplicationId"], events[0].event_id);
    assert_eq!(indexed[0].attributes["MessageGroupId"], "acme");
}

#[tokio::test]
async fn undecodable_outbox_records_fail_and_other_items_are_ignored() {
    let stack = TestStack::new().await;
    let app = stack.app("OutboxDrainFunction");
    let record = |sequence: &str,
                  event_name: &str,
                  image: Value|
     -> aws_lambda_events::event::dynamodb::EventRecord {
        serde_json::from_value(json!({
            "awsRegion": "us-east-1",
            "eventID": sequence,
            "eventName": event_name,
            "eventSource": "aws:dynamodb",
            "dynamodb": { "NewImage": image, "SequenceNumber": sequence, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES" }
        }))
        .unwrap()
    };
    let records = vec![
        record(
            "100",
            "INSERT",
            json!({"pk": {"S": "T#acme#USER#1"}, "sk": {"S": "USER"}, "kind": {"S": "user"}}),
        ),
        record(
            "101",
            "INSERT",
            json!({"pk": {"S": "T#acme#OUTBOX#x"}, "sk": {"S": "OUTBOX"}, "kind": {"S": "outbox"}}),
        ),
        record(
            "102",
            "MODIFY",
            json!({"pk": {"S": "T#acme#OUTBOX#y"}, "sk": {"S": "OUTBOX"}, "kind": {"S": "outbox"}}),
        ),
    ];
    let response = outbox_drain::handler(&app, StreamTrigger::event(records)).await.unwrap();
    let failed: Vec<_> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
    assert_eq!(failed, ["101"], "only the broken outbox INSERT is reported");
    assert!(QueueTrigger::new(&stack, "EventsQueue").drain().await.is_empty());
}

#[tokio::test]
async fn every_payments_operation_writes_exactly_its_events() {
    use caas_tests::api::Api;
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let token = api.token("acme", "ops@example.com").await;
    new_events(&stack, &stream).await;
    let sorted = |events: &[OutboxEvent]| {
        let mut got = types(events).into_iter().map(str::to_owned).collect::<Vec<_>>();
        got.sort();
        got
    };

    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    let events = new_events(&stack, &stream).await;
    assert_eq!(types(&events), ["account.created", "account.created"]);
    let actor = json!({"type": "user", "id": subject(&token)});
    assert_eq!(
        events[0].payload,
        json!({
            "account_id": alice,
            "currency": "USD",
            "allow_overdraft": false,
            "overdraft_limit": 0,
            "owner": {"type": "user", "id": subject(&token)},
            "actor": actor
        })
    );

    // Refused for lack of funds: nothing committed, nothing published.
    assert_eq!(api.authorize(&token, &alice, &bob, 100, "USD").await.status(), 422);
    for event in outbox_events(&stream.poll().await) {
        assert!(!is_stored(&stack, &event).await, "a cancelled transaction stored {}", event.event_type);
    }

    api.fund(&token, &alice, 1_000, "USD").await;
    new_events(&stack, &stream).await;
    let (status, payment) = parts(&api.authorize(&token, &alice, &bob, 600, "USD").await);
    assert_eq!(status, 201);
    let id = payment["payment_id"].as_str().unwrap();
    let events = new_events(&stack, &stream).await;
    assert_eq!(sorted(&events), ["ledger.transaction_recorded", "payment.authorized"]);
    let authorized = events.iter().find(|e| e.event_type == "payment.authorized").unwrap();
    let recorded = events.iter().find(|e| e.event_type == "ledger.transaction_recorded").unwrap();
    assert_eq!((authorized.aggregate_type.as_str(), authorized.aggregate_id.as_str()), ("payment", id));
    assert_eq!(authorized.payload["ledger_tx_id"], recorded.payload["tx_id"]);
    assert_eq!(recorded.payload["movement"], "authorize");
    assert_eq!(authorized.correlation_id, recorded.correlation_id, "one request, one correlation id");

    for (operation, event_type, movement) in
        [("capture", "payment.captured", "capture"), ("refund", "payment.refunded", "refund")]
    {
        let response = match operation {
            "capture" => api.capture(&token, id, Some(500)).await,
            _ => api.refund(&token, id, 200).await,
        };
        assert!(response.status().is_success());
        let events = new_events(&stack, &stream).await;
        assert_eq!(sorted(&events), ["ledger.transaction_recorded", event_type]);
        assert!(events.iter().any(|e| e.payload["movement"] == movement));
    }

    let (_, other) = parts(&api.authorize(&token, &alice, &bob, 100, "USD").await);
    let other = other["payment_id"].as_str().unwrap();
    new_events(&stack, &stream).await;
    assert_eq!(api.void(&token, other).await.status(), 200);
    assert_eq!(sorted(&new_events(&stack, &stream).await), ["ledger.transaction_recorded", "payment.voided"]);

    // A replay changes nothing, so it writes nothing; neither does a refused transition.
    let (_, third) = parts(&api.authorize(&token, &alice, &bob, 100, "USD").await);
    let third = third["payment_id"].as_str().unwrap();
    let body = json!({});
    let capture = |key: &'static str, id: &str| {
        let id = id.to_owned();
        let (api, token, body) = (&api, &token, &body);
        async move {
            api.post("CapturePaymentFunction", "/v1/payments/{id}/capture", Some(&id), token, Some(key), body)
                .await
        }
    };
    assert_eq!(capture("capture-once", third).await.status(), 200);
    assert_eq!(
        new_events(&stack, &stream).await.len(),
        4,
        "authorized and captured, each with its ledger event"
    );
    assert_eq!(capture("capture-once", third).await.status(), 200);
    assert_eq!(capture("capture-voided", other).await.status(), 409);
    for event in outbox_events(&stream.poll().await) {
        assert!(!is_stored(&stack, &event).await, "a replay or refusal stored {}", event.event_type);
    }
    // register + login 2, the treasurer who funds (invited, registered,
    // logged in) 3, accounts 3 (two wallets, one funding), funding payment 4,
    // first payment 6, voided 4, captured once 4.
    assert_eq!(outbox_items(&stack).await, 2 + 3 + 3 + 4 + 6 + 4 + 4);
}

/// 100 registrations' events, streamed and not yet drained.
async fn hundred_events(
    stack: &TestStack,
    stream: &StreamTrigger,
) -> Vec<aws_lambda_events::event::dynamodb::EventRecord> {
    with_tenants(stack, stream, &["acme"]).await;
    for i in 0..100 {
        assert_eq!(register(stack, "acme", &format!("u{i}@example.com")).await.0, 201);
    }
    let records = stream.poll().await;
    assert_eq!(outbox_events(&records).len(), 100);
    records
}

#[tokio::test]
async fn a_stream_batch_of_100_events_costs_four_dynamodb_calls() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let records = hundred_events(&stack, &stream).await;
    let events = outbox_events(&records);
    let app = stack.app("OutboxDrainFunction");
    stack.round_trips.reset();
    let response = outbox_drain::handler(&app, StreamTrigger::event(records)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let dynamodb = stack.round_trips.operations("dynamodb");
    assert_eq!(dynamodb, ["BatchWriteItem"; 4], "the bookkeeping: 25 items to a call");
    let per_event = dynamodb.len() as f64 / events.len() as f64;
    assert!(per_event <= 0.05, "{per_event} DynamoDB calls per event");
    // Ten batches to the events queue, ten to the search queue (a registration is indexed).
    assert_eq!(stack.round_trips.operations("sqs"), ["SendMessageBatch"; 20]);
    for event in &events {
        assert!(published_at(&stack, event).await.is_some());
    }
    assert_eq!(QueueTrigger::new(&stack, "EventsQueue").drain().await.len(), 100);
    assert_eq!(QueueTrigger::new(&stack, "SearchQueue").drain().await.len(), 100);
    stack.clock.advance(time::Duration::hours(1));
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!(report.found, 0, "every marked item left the pending index");
}

/// Makes DynamoDB answer BatchWriteItem with unprocessed items: `Once`
/// reports the last 5 writes of the first call unprocessed (they were
/// written: a resend is a repeat); `Always` sends a no-op instead of the
/// writes and reports all of them unprocessed (sustained throttling).
#[derive(Debug, Clone)]
struct Unprocessed {
    always: bool,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Clone)]
struct Unsent(Value);

impl aws_smithy_types::config_bag::Storable for Unsent {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Unprocessed {
    fn name(&self) -> &'static str {
        "Unprocessed"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation =
            cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>().map(|m| m.name().to_owned());
        if operation.as_deref() != Some("BatchWriteItem") {
            return Ok(());
        }
        let first = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let request = context.request_mut();
        let body: Value = serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
        let Some((table, writes)) = body["RequestItems"].as_object().and_then(|m| m.iter().next()) else {
            return Ok(());
        };
        let writes = writes.as_array().cloned().unwrap_or_default();
        if self.always {
            let noop = json!({"RequestItems": {table: [{"DeleteRequest": {"Key": {"pk": {"S": "T#none#NOTHING"}, "sk": {"S": "NOTHING"}}}}]}}).to_string();
            request.headers_mut().insert("content-length", noop.len().to_string());
            *request.body_mut() = aws_smithy_types::body::SdkBody::from(noop);
            cfg.interceptor_state().store_put(Unsent(json!({table: writes})));
        } else if first {
            let left = writes[writes.len().saturating_sub(5)..].to_vec();
            cfg.interceptor_state().store_put(Unsent(json!({table: left})));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(Unsent(items)) = cfg.load::<Unsent>().cloned() {
            let body = json!({"UnprocessedItems": items}).to_string();
            let response = context.response_mut();
            response.headers_mut().insert("content-length", body.len().to_string());
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(body);
            cfg.interceptor_state().unset::<Unsent>();
        }
        Ok(())
    }
}

/// The drain's app whose DynamoDB client sees `unprocessed` answers (and is counted).
fn throttled(stack: &TestStack, always: bool) -> caas::App {
    let mut app = stack.app("OutboxDrainFunction");
    let unprocessed = Unprocessed { always, calls: Default::default() };
    app.clients.dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .interceptor(stack.round_trips.clone())
            .interceptor(unprocessed)
            .build(),
    );
    app
}

#[tokio::test]
async fn unprocessed_writes_are_sent_again_and_never_lost() {
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    let records = hundred_events(&stack, &stream).await;
    let events = outbox_events(&records);

    // Some writes unprocessed once: sent again, every item marked.
    stack.round_trips.reset();
    let response = outbox_drain::handler(&throttled(&stack, false), StreamTrigger::event(records.clone()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["BatchWriteItem"; 5],
        "four batches and one resend"
    );
    for event in &events {
        assert!(published_at(&stack, event).await.is_some());
    }
    queue.drain().await;

    // Writes that stay unprocessed: after the attempts, the records are
    // reported and the items stay pending; the sweep publishes them.
    let stack = TestStack::new().await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    let records = hundred_events(&stack, &stream).await;
    let events = outbox_events(&records);
    let response =
        outbox_drain::handler(&throttled(&stack, true), StreamTrigger::event(records)).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 100, "every record left for Lambda's retry");
    for event in &events {
        assert_eq!(published_at(&stack, event).await, None, "{} not marked", event.event_id);
    }
    assert_eq!(queue.drain().await.len(), 100, "published (a retry publishes again, deduplicated)");
    stack.clock.advance(time::Duration::minutes(10));
    let app = stack.app("OutboxDrainFunction");
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!((report.found, report.published, report.failed), (100, 100, 0));
    for event in &events {
        assert!(published_at(&stack, event).await.is_some());
    }
    let report = outbox_drain::sweep(&app, lambda_event(SweepRequest::new(300))).await.unwrap();
    assert_eq!(report.found, 0);
}
