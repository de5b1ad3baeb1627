//! The audit chain against the emulator: end to end from the API through the
//! stream, outbox-drain, the FIFO queue and audit-writer to a chain that
//! verifies; redelivery and double drains leave it unchanged; FIFO group
//! failures; concurrent writers; tampering is named by seq; list-audit paging.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use caas::audit::{BreakReason, Checkpoint};
use caas::auth::Role;
use caas::outbox::OutboxEvent;
use caas::tenant::TenantId;
use caas_tests::api::{Api, api_event};
use caas_tests::triggers::{QueueTrigger, StreamTrigger, lambda_event, outbox_events};
use caas_tests::*;
use serde_json::{Value, json};
use std::collections::HashSet;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A synthetic event of `tenant`.
fn event(tenant_name: &str, n: u32) -> OutboxEvent {
    OutboxEvent::new(
        &tenant(tenant_name),
        "user",
        &format!("user-{n}"),
        "user.login_succeeded",
        time::OffsetDateTime::now_utc(),
        "test",
        json!({ "n": n, "user_id": format!("user-{n}") }),
    )
}

/// An SQS message carrying `event`, as the drain sends it.
fn message(event: &OutboxEvent) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(uuid::Uuid::new_v4().to_string());
    message.body = Some(event.to_message_body().unwrap());
    message.attributes.insert("MessageGroupId".into(), event.tenant_id.clone());
    message.attributes.insert("MessageDeduplicationId".into(), event.event_id.clone());
    message
}

fn sqs_event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

async fn write(app: &caas::App, event: SqsEvent) -> Vec<String> {
    let response = audit_writer::handler(app, lambda_event(event)).await.expect("audit-writer answers");
    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
}

async fn verify(stack: &TestStack, tenant_name: &str) -> caas::audit::ChainReport {
    caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant(tenant_name)).await.unwrap()
}

async fn head(stack: &TestStack, tenant_name: &str) -> Option<Checkpoint> {
    caas::store::audit::head(&stack.clients.dynamodb, &stack.table(), tenant_name).await.unwrap()
}

/// What Lambda would do: stream → outbox-drain → events queue → audit-writer,
/// until the queue is empty. Returns the envelopes in the order audit-writer got them.
async fn pipeline(
    stack: &TestStack,
    stream: &StreamTrigger,
    queue: &QueueTrigger,
    replay: bool,
) -> Vec<OutboxEvent> {
    let drain = stack.app("OutboxDrainFunction");
    let records = if replay { stream.replay().await } else { stream.poll().await };
    let drained = outbox_drain::handler(&drain, StreamTrigger::event(records)).await.unwrap();
    assert!(drained.batch_item_failures.is_empty());
    let writer = stack.app("AuditWriterFunction");
    let mut delivered = Vec::new();
    loop {
        let batch = queue.receive(10).await;
        if batch.records.is_empty() {
            return delivered;
        }
        delivered
            .extend(batch.records.iter().map(|m| serde_json::from_str(m.body.as_deref().unwrap()).unwrap()));
        let response = audit_writer::handler(&writer, lambda_event(batch.clone())).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
        queue.settle(&batch, &response).await;
    }
}

async fn get(api: &Api<'_>, function: &str, path: &str, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let request = api_event("GET", path, &[], query, &[("authorization", &bearer)], None);
    let response = api.call(function, request).await;
    let (status, body) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, body)
}

/// Every entry of the caller's chain through list-audit, page by page.
async fn list_all(api: &Api<'_>, token: &str, limit: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let (status, page) = get(
            api,
            "ListAuditFunction",
            "/v1/audit/events",
            token,
            &[("after_seq", &after), ("limit", limit)],
        )
        .await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page.get("next_after_seq") {
            Some(next) => after = next.to_string(),
            None => return entries,
        }
    }
}

#[tokio::test]
async fn end_to_end_the_chain_holds_every_event_in_queue_order_and_verifies() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");

    let acme = api.token("acme", "ada@example.com").await;
    api.token("globex", "bob@example.com").await;
    let wrong =
        json!({"tenant_id": "acme", "email": "ada@example.com", "password": "wrong password!!"}).to_string();
    let refused =
        api.call("LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&wrong))).await;
    assert_eq!(refused.status(), 401);
    let payer = api.account(&acme, "EUR", false).await;
    let payee = api.account(&acme, "EUR", false).await;
    api.fund(&acme, &payer, 10_000, "EUR").await;
    let (status, payment) = parts(&api.authorize(&acme, &payer, &payee, 2_500, "EUR").await);
    assert_eq!(status, 201, "{payment}");
    assert_eq!(api.capture(&acme, payment["payment_id"].as_str().unwrap(), None).await.status(), 200);
    // The audit routes are for owners, admins and auditors.
    let acme_auditor = api.invited("acme", "auditor@acme.example", Role::Auditor).await;
    let globex_auditor = api.invited("globex", "auditor@globex.example", Role::Auditor).await;

    let delivered = pipeline(&stack, &stream, &queue, false).await;
    let stored: Vec<OutboxEvent> = {
        let mut stored = Vec::new();
        for event in outbox_events(&stream.replay().await) {
            let found = caas::store::outbox::find(
                &stack.clients.dynamodb,
                &stack.table(),
                &event.tenant_id,
                &event.event_id,
            )
            .await
            .unwrap();
            if let Some((item, published_at)) = found {
                assert!(published_at.is_some(), "{} published", item.event_type);
                stored.push(item);
            }
        }
        stored
    };
    let types: HashSet<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "user.registered",
        "user.login_succeeded",
        "user.login_failed",
        "account.created",
        "payment.authorized",
        "payment.captured",
        "ledger.transaction_recorded",
    ] {
        assert!(types.contains(expected), "{expected} in {types:?}");
    }

    for (name, token) in [("acme", &acme_auditor), ("globex", &globex_auditor)] {
        let queued: Vec<&OutboxEvent> = delivered.iter().filter(|e| e.tenant_id == name).collect();
        for event in stored.iter().filter(|e| e.tenant_id == name) {
            assert!(queued.contains(&event), "{name}: {} reached the chain's queue", event.event_type);
        }
        let report = verify(&stack, name).await;
        assert!(report.ok, "{name}: {report:?}");
        assert_eq!(report.entries_checked, queued.len() as u64, "{name}: one entry per event");
        assert_eq!(report.head_seq, queued.len() as u64);

        let entries = list_all(&api, token, "3").await;
        let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=queued.len() as u64).collect::<Vec<_>>());
        let chained: Vec<&str> = entries.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
        let order: Vec<&str> = queued.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(chained, order, "{name}: the chain is in queue order");
        assert!(entries.iter().all(|e| e["tenant_id"] == name), "own tenant only");
        assert_eq!(entries[0]["prev_hash"], caas::audit::GENESIS_HASH);
        for pair in entries.windows(2) {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
        }
        let first = queued[0];
        assert_eq!(entries[0]["type"], first.event_type.as_str());
        assert_eq!(entries[0]["payload"], first.payload);

        let (status, verified) = get(&api, "VerifyAuditFunction", "/v1/audit/verify", token, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(verified["ok"], true);
        assert_eq!(verified["entries_checked"], queued.len());
        assert!(verified.get("first_broken_seq").is_none());
    }

    // At least once, never twice: the drain over the same stream records again...
    let heads = (head(&stack, "acme").await, head(&stack, "globex").await);
    pipeline(&stack, &stream, &queue, true).await;
    // ...and the same envelopes delivered again after the queue's dedup window.
    let writer = stack.app("AuditWriterFunction");
    for chunk in delivered.chunks(10) {
        let batch = sqs_event(chunk.iter().map(message).collect());
        assert!(write(&writer, batch.clone()).await.is_empty());
        assert!(write(&writer, batch).await.is_empty(), "the same batch twice");
    }
    assert_eq!((head(&stack, "acme").await, head(&stack, "globex").await), heads, "chains unchanged");
    assert!(verify(&stack, "acme").await.ok);
}

#[tokio::test]
async fn duplicates_are_skipped_and_new_events_appended_in_one_batch() {
    let stack = TestStack::new().await;
    let writer = stack.app("AuditWriterFunction");
    let events: Vec<OutboxEvent> = (0..5).map(|n| event("acme", n)).collect();
    assert!(write(&writer, sqs_event(events[..3].iter().map(message).collect())).await.is_empty());
    assert_eq!(head(&stack, "acme").await.unwrap().seq, 3);

    // A batch mixing redelivered events, a new one, and one event twice.
    let batch = vec![
        message(&events[1]),
        message(&events[3]),
        message(&events[2]),
        message(&events[3]),
        message(&events[4]),
    ];
    assert!(write(&writer, sqs_event(batch)).await.is_empty());
    let report = verify(&stack, "acme").await;
    assert!(report.ok);
    assert_eq!(report.entries_checked, 5);
    let (entries, _) =
        caas::store::audit::entries_after(&stack.clients.dynamodb, &stack.table(), "acme", 0, 100)
            .await
            .unwrap();
    let ids: Vec<String> = entries.into_iter().map(|e| e.unwrap().event_id).collect();
    assert_eq!(ids, events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_message_fails_the_rest_of_its_group_only() {
    let stack = TestStack::new().await;
    let writer = stack.app("AuditWriterFunction");
    let (a1, a2, g1) = (event("acme", 1), event("acme", 2), event("globex", 1));
    let mut broken = message(&a1);
    broken.body = Some("{not an envelope".into());
    broken.message_id = Some("broken".into());
    let mut later = message(&a2);
    later.message_id = Some("later".into());
    let mut foreign = message(&g1);
    foreign.attributes.insert("MessageGroupId".into(), "acme".into());
    foreign.message_id = Some("foreign".into());
    let batch = vec![message(&a1), broken, later, message(&g1)];
    let mut failed = write(&writer, sqs_event(batch)).await;
    failed.sort();
    assert_eq!(failed, ["broken", "later"]);
    assert_eq!(head(&stack, "acme").await.unwrap().seq, 1);
    assert_eq!(head(&stack, "globex").await.unwrap().seq, 1);

    // The later message, redelivered on its own, is appended after the first.
    assert!(write(&writer, sqs_event(vec![message(&a2)])).await.is_empty());
    assert_eq!(head(&stack, "acme").await.unwrap().seq, 2);
    // An envelope in another tenant's message group is refused.
    assert_eq!(write(&writer, sqs_event(vec![foreign])).await, ["foreign"]);
    assert!(verify(&stack, "acme").await.ok && verify(&stack, "globex").await.ok);
}

#[tokio::test]
async fn concurrent_writers_of_one_tenant_never_fork_the_chain() {
    let stack = TestStack::new().await;
    let app = stack.app("AuditWriterFunction");
    let shared = event("acme", 0);
    let batches: Vec<Vec<OutboxEvent>> = (0..4)
        .map(|w| std::iter::once(shared.clone()).chain((1..=5).map(|n| event("acme", w * 10 + n))).collect())
        .collect();
    let acme = tenant("acme");
    let results =
        futures::future::join_all(batches.iter().map(|b| caas::audit::append_events(&app, &acme, b))).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let report = verify(&stack, "acme").await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 21, "20 distinct events plus the shared one, once");
    let appended: usize = results.iter().map(|r| r.as_ref().unwrap().appended).sum();
    assert_eq!(appended, 21);
}

async fn append(stack: &TestStack, tenant_name: &str, count: u32) -> Vec<OutboxEvent> {
    let events: Vec<OutboxEvent> = (1..=count).map(|n| event(tenant_name, n)).collect();
    let app = stack.app("AuditWriterFunction");
    caas::audit::append_events(&app, &tenant(tenant_name), &events).await.unwrap();
    events
}

fn entry_key(tenant_name: &str, seq: u64) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("T#{tenant_name}#AUDIT"))),
        ("sk".to_owned(), AttributeValue::S(format!("E#{seq:020}"))),
    ])
}

#[tokio::test]
async fn tampering_is_reported_with_the_first_broken_seq() {
    let stack = TestStack::new().await;
    let dynamodb = &stack.clients.dynamodb;
    for name in ["acme", "beta", "gamma"] {
        append(&stack, name, 6).await;
        assert!(verify(&stack, name).await.ok);
    }

    // An edited payload.
    dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(entry_key("acme", 3)))
        .update_expression("SET payload = :p")
        .expression_attribute_values(":p", AttributeValue::S(r#"{"n":3,"user_id":"someone-else"}"#.into()))
        .send()
        .await
        .unwrap();
    let report = verify(&stack, "acme").await;
    assert_eq!(
        (report.ok, report.first_broken_seq, report.reason),
        (false, Some(3), Some(BreakReason::HashMismatch))
    );
    assert_eq!(report.entries_checked, 3);

    let api = Api::new(&stack);
    let token = api.invited("acme", "auditor@example.com", Role::Auditor).await;
    let (status, body) = get(&api, "VerifyAuditFunction", "/v1/audit/verify", &token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!((body["ok"].as_bool(), body["first_broken_seq"].as_u64()), (Some(false), Some(3)));

    // A deleted entry in the middle.
    dynamodb
        .delete_item()
        .table_name(stack.table())
        .set_key(Some(entry_key("beta", 2)))
        .send()
        .await
        .unwrap();
    let report = verify(&stack, "beta").await;
    assert_eq!(
        (report.ok, report.first_broken_seq, report.reason),
        (false, Some(2), Some(BreakReason::MissingEntry))
    );

    // A deleted last entry (the head still names it).
    dynamodb
        .delete_item()
        .table_name(stack.table())
        .set_key(Some(entry_key("gamma", 6)))
        .send()
        .await
        .unwrap();
    let report = verify(&stack, "gamma").await;
    assert_eq!((report.ok, report.first_broken_seq), (false, Some(6)));

    // Verification from a trusted checkpoint after the break skips it.
    let (entries, _) =
        caas::store::audit::entries_after(dynamodb, &stack.table(), "acme", 3, 1).await.unwrap();
    let fourth = entries.into_iter().next().unwrap().unwrap();
    let report =
        caas::audit::verify_chain_from(dynamodb, &stack.table(), &tenant("acme"), fourth.checkpoint())
            .await
            .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 2);
}

#[tokio::test]
async fn list_audit_pages_validates_parameters_and_stays_in_its_tenant() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let events = append(&stack, "acme", 7).await;
    let acme = api.invited("acme", "auditor@acme.example", Role::Auditor).await;
    let globex = api.invited("globex", "admin@globex.example", Role::Admin).await;
    let member = api.token("acme", "ada@example.com").await;
    for (function, route) in
        [("ListAuditFunction", "/v1/audit/events"), ("VerifyAuditFunction", "/v1/audit/verify")]
    {
        let (status, _) = get(&api, function, route, &member, &[]).await;
        assert_eq!(status, 403, "{route}: owners, admins and auditors only");
    }

    let (status, page) = get(&api, "ListAuditFunction", "/v1/audit/events", &acme, &[("limit", "3")]).await;
    assert_eq!(status, 200);
    assert_eq!(page["entries"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_after_seq"], 3);
    let (_, page) =
        get(&api, "ListAuditFunction", "/v1/audit/events", &acme, &[("after_seq", "6"), ("limit", "3")])
            .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert!(page.get("next_after_seq").is_none(), "last page");
    let (_, page) = get(&api, "ListAuditFunction", "/v1/audit/events", &acme, &[]).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 7, "default limit 50");
    let ids: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>());
    assert_eq!(list_all(&api, &acme, "2").await.len(), 7);

    let (_, page) = get(&api, "ListAuditFunction", "/v1/audit/events", &globex, &[]).await;
    assert_eq!(page["entries"], json!([]), "another tenant's chain is not visible");
    let (_, verified) = get(&api, "VerifyAuditFunction", "/v1/audit/verify", &globex, &[]).await;
    assert_eq!((verified["ok"].as_bool(), verified["entries_checked"].as_u64()), (Some(true), Some(0)));

    for (query, field) in [
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "201")], "limit"),
        (vec![("limit", "ten")], "limit"),
        (vec![("after_seq", "-1")], "after_seq"),
        (vec![("after_seq", "x")], "after_seq"),
    ] {
        let (status, problem) = get(&api, "ListAuditFunction", "/v1/audit/events", &acme, &query).await;
        assert_eq!((status, problem["field"].as_str()), (400, Some(field)), "{query:?}");
    }
    for function in ["ListAuditFunction", "VerifyAuditFunction"] {
        let request = api_event("GET", "/v1/audit/events", &[], &[], &[], None);
        let app = api.app(function);
        let response = match function {
            "ListAuditFunction" => list_audit::handler(&app, request).await,
            _ => verify_audit::handler(&app, request).await,
        }
        .unwrap();
        assert_problem(&response, 401);
    }
}

#[tokio::test]
async fn the_verify_job_checks_every_tenants_chain() {
    let stack = TestStack::new().await;
    for name in ["acme", "beta"] {
        append(&stack, name, 4).await;
    }
    let run = || async {
        let event =
            lambda_runtime::LambdaEvent::new(serde_json::json!({}), lambda_runtime::Context::default());
        verify::handler(&stack.app("VerifyFunction"), event).await.expect("verify runs")
    };
    let report = run().await;
    assert!(report.ok);
    assert_eq!(report.audit.iter().map(|c| c.tenant_id.as_str()).collect::<Vec<_>>(), ["acme", "beta"]);

    stack
        .clients
        .dynamodb
        .delete_item()
        .table_name(stack.table())
        .set_key(Some(entry_key("beta", 2)))
        .send()
        .await
        .unwrap();
    let report = run().await;
    assert!(!report.ok);
    let broken: Vec<_> =
        report.broken_chains().map(|c| (c.tenant_id.as_str(), c.chain.first_broken_seq)).collect();
    assert_eq!(broken, [("beta", Some(2))]);
    assert!(report.ledger.ok, "the ledger itself is fine");
}
