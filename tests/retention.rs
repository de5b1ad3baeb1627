// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Retention against the emulator: the operator's per-tenant policy; the
//! retention job deletes what is past it (published outbox items, payment
//! events, expired idempotency records and sessions TTL left behind) and
//! nothing else; audit entries past retention go only below a signed
//! checkpoint, verification then starts from it (online, offline and on a
//! drill's restored copy), and a broken chain is never trimmed.

use caas::audit::BreakReason;
use caas::outbox::OutboxEvent;
use caas::tenant::TenantId;
use caas_tests::api::Api;
use caas_tests::triggers::{QueueTrigger, StreamTrigger, audit_pipeline, synthetic_event};
use caas_tests::*;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::HashMap;

const DAY: time::Duration = time::Duration::days(1);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A run of the job with its sample event (events/retention.json).
async fn retention(stack: &TestStack) -> Value {
    let payload: Value = serde_json::from_str(&event_file("retention.json")).unwrap();
    let event = LambdaEvent::new(payload, Context::default());
    let report = retention::handler(&stack.app("RetentionFunction"), event).await.expect("retention runs");
    serde_json::to_value(report).unwrap()
}

async fn operator(stack: &TestStack, command: Value) -> Result<Value, String> {
    tenants::handler(&stack.app("TenantsFunction"), invocation(command)).await.map_err(|e| e.to_string())
}

/// Items of the table by kind, for one tenant.
async fn census(stack: &TestStack, tenant_name: &str) -> HashMap<String, usize> {
    let prefix = format!("T#{tenant_name}#");
    let items: Vec<HashMap<String, Value>> =
        scan_items(stack, "begins_with(pk, :prefix)", &[(":prefix", &prefix)]).await;
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item["kind"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    counts
}

fn count(census: &HashMap<String, usize>, kind: &str) -> usize {
    census.get(kind).copied().unwrap_or(0)
}

#[tokio::test]
async fn records_go_when_their_tenants_retention_is_past_and_not_before() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    for name in ["acme", "globex"] {
        let token = api.token(name, &format!("ada@{name}.example")).await;
        let (payer, payee) =
            (api.account(&token, "EUR", false).await, api.account(&token, "EUR", false).await);
        api.fund(&token, &payer, 10_000, "EUR").await;
        assert_eq!(api.authorize(&token, &payer, &payee, 100, "EUR").await.status(), 201);
    }
    audit_pipeline(&stack, &stream, &queue).await;

    // The operator shortens acme's outbox retention; bad values are named.
    let policy = operator(&stack, json!({"action": "set_retention", "tenant_id": "acme", "outbox_days": 1}))
        .await
        .unwrap();
    assert_eq!(policy, json!({"outbox_days": 1, "payment_events_days": 2555, "audit_days": 2555}));
    let refused =
        operator(&stack, json!({"action": "set_retention", "tenant_id": "acme", "audit_days": 30})).await;
    assert!(refused.unwrap_err().contains("audit_days"));
    let refused =
        operator(&stack, json!({"action": "set_retention", "tenant_id": "nobody", "outbox_days": 2})).await;
    assert!(refused.is_err(), "an unknown tenant");
    audit_pipeline(&stack, &stream, &queue).await; // tenant.retention_changed

    let before: HashMap<&str, HashMap<String, usize>> =
        HashMap::from([("acme", census(&stack, "acme").await), ("globex", census(&stack, "globex").await)]);
    for name in ["acme", "globex"] {
        for kind in ["outbox", "payment_event", "idempotency", "session"] {
            assert!(count(&before[name], kind) > 0, "{name} has {kind} items: {:?}", before[name]);
        }
    }

    // Nothing is past retention yet.
    let report = retention(&stack).await;
    assert_eq!(report["deleted"], json!({}), "{report}");

    // Two days on: acme's published outbox items (1 day) and every idempotency
    // record (kept 24 h) go; globex's outbox items (30 days), sessions and
    // payment events stay.
    stack.clock.advance(DAY * 2);
    let report = retention(&stack).await;
    let after = census(&stack, "acme").await;
    assert_eq!(count(&after, "outbox"), 0, "{report}");
    assert_eq!(count(&after, "idempotency"), 0);
    assert_eq!(count(&after, "payment_event"), count(&before["acme"], "payment_event"));
    assert_eq!(count(&after, "session"), count(&before["acme"], "session"));
    let globex = census(&stack, "globex").await;
    assert_eq!(count(&globex, "outbox"), count(&before["globex"], "outbox"));
    assert_eq!(count(&globex, "idempotency"), 0);
    assert_eq!(report["deleted"]["outbox_items"].as_u64(), Some(count(&before["acme"], "outbox") as u64));

    // Eight years on: sessions expired long ago, payment events past 7 years.
    stack.clock.advance(DAY * (8 * 365));
    retention(&stack).await;
    for name in ["acme", "globex"] {
        let left = census(&stack, name).await;
        for kind in ["outbox", "payment_event", "idempotency", "session", "refresh_token"] {
            assert_eq!(count(&left, kind), 0, "{name}: {kind} in {left:?}");
        }
        assert!(count(&left, "account") > 0, "accounts and the ledger stay");
        assert!(count(&left, "ledger_entry") + count(&left, "ledger_tx") + count(&left, "account") > 0);
    }
}

async fn append(app: &caas::App, tenant_name: &str, range: std::ops::RangeInclusive<u32>) {
    let events: Vec<OutboxEvent> =
        range.map(|n| synthetic_event(tenant_name, n, json!({ "n": n }))).collect();
    caas::audit::append_events(app, &tenant(tenant_name), &events).await.unwrap();
}

#[tokio::test]
async fn audit_entries_past_retention_go_only_below_a_signed_checkpoint() {
    let stack = TestStack::new().await;
    let writer = stack.app_with("AuditWriterFunction", &[("AUDIT_CHECKPOINT_EVERY", "4")]);
    for name in ["acme", "held"] {
        operator(&stack, json!({"action": "create", "tenant_id": name, "name": name, "owner_email": format!("o@{name}.example")}))
            .await
            .unwrap();
        operator(&stack, json!({"action": "set_retention", "tenant_id": name, "audit_days": 365}))
            .await
            .unwrap();
        // 1..=6 now: the writer signs 6 (it passed 4).
        append(&writer, name, 1..=6).await;
    }
    // 400 days on, 7..=10: the writer signs 10 (it passed 8).
    stack.clock.advance(DAY * 400);
    for name in ["acme", "held"] {
        append(&writer, name, 7..=10).await;
    }
    // The held tenant's chain is broken: retention must not delete the evidence.
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("T#held#AUDIT".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("E#{:020}", 2)))
        .update_expression("SET payload = :p")
        .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S(r#"{"n":99}"#.into()))
        .send()
        .await
        .unwrap();

    // 100 days later the checkpoint at 6 is 500 days old (past 365), the one at 10 is not.
    stack.clock.advance(DAY * 100);
    let report = retention(&stack).await;
    let audit: HashMap<&str, &Value> =
        report["audit"].as_array().unwrap().iter().map(|a| (a["tenant_id"].as_str().unwrap(), a)).collect();
    assert_eq!(
        (audit["acme"]["entries_deleted"].as_u64(), audit["acme"]["starts_after_seq"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(audit["held"]["entries_deleted"], 0, "{report}");
    assert!(audit["held"]["held"].is_string());

    let (entries, _) =
        caas::store::audit::entries_after(&stack.clients.dynamodb, &stack.table(), "acme", 0, 100)
            .await
            .unwrap();
    assert_eq!(entries.iter().map(|e| e.as_ref().unwrap().seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
    // Without its checkpoint the shortened chain would look broken; with it, it verifies.
    let plain =
        caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant("acme")).await.unwrap();
    assert_eq!((plain.ok, plain.reason), (false, Some(BreakReason::MissingEntry)));
    let live =
        caas::audit::trust::verify_live(&stack.app("VerifyAuditFunction"), &tenant("acme")).await.unwrap();
    assert!(live.ok, "{live:?}");
    assert_eq!((live.entries_checked, live.head_seq), (4, 10));
    let job = verify::handler(
        &stack.app("VerifyFunction"),
        LambdaEvent::new(json!({"tenant_id": "acme"}), Context::default()),
    )
    .await
    .unwrap();
    assert!(job.ok);
    // Again: nothing more is past retention.
    let again = retention(&stack).await;
    assert_eq!(
        again["audit"].as_array().unwrap().iter().find(|a| a["tenant_id"] == "acme").unwrap()["entries_deleted"],
        0
    );

    // A drill's restored copy verifies acme from its checkpoint too; the held
    // tenant's chain is broken on the copy as well, and is the only one named.
    let backup = stack.app("BackupFunction");
    match caas::backup::drill(
        &backup,
        Some(caas::backup::PointInTime::Latest),
        None,
        caas::clock::Deadline(0),
    )
    .await
    {
        Err(caas::backup::BackupError::DrillFailed { report, .. }) => {
            let report = serde_json::to_value(&report).unwrap();
            let audit =
                report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "audit_chains").unwrap();
            let broken: Vec<&str> = audit["detail"]["broken"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["tenant"].as_str().unwrap())
                .collect();
            assert_eq!(broken, ["held"], "{audit}");
            let ledger = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ledger").unwrap();
            assert_eq!(ledger["ok"], true);
        }
        other => panic!("expected the drill to fail on the held chain, got {other:?}"),
    }
}
