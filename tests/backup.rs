//! The backup function against the emulator: PITR enforcement, on-demand
//! backups with retention, restore drills that verify the restored copy,
//! and restores with their settings re-applied.
//!
//! The emulator stamps backups with its own clock, so retention is driven by
//! the app's manual clock (backups "age" when it advances); the rule itself is
//! unit-tested over controlled times in `caas::backup::retention`.

use aws_sdk_dynamodb::types::{AttributeValue, PointInTimeRecoverySpecification, PointInTimeRecoveryStatus};
use backup::Input;
use caas::backup::BackupError;
use caas::clock::Deadline;
use caas_tests::api::Api;
use caas_tests::triggers::{QueueTrigger, StreamTrigger, audit_pipeline, lambda_event};
use caas_tests::*;
use serde_json::{Value, json};

const FUNCTION: &str = "BackupFunction";

/// EMF documents emitted for `table`, in order (the harness captures them).
fn metrics_for(table: &str) -> Vec<Value> {
    captured_metrics().into_iter().filter(|l| l["table"] == table).collect()
}

async fn invoke(app: &caas::App, payload: Value) -> Result<Value, String> {
    let input: Input = serde_json::from_value(payload).map_err(|e| e.to_string())?;
    backup::handler(app, invocation(input)).await.map_err(|e| e.to_string())
}

async fn pitr_status(stack: &TestStack, table: &str) -> Option<PointInTimeRecoveryStatus> {
    stack
        .clients
        .dynamodb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|d| d.point_in_time_recovery_status())
        .cloned()
}

async fn table_exists(stack: &TestStack, table: &str) -> bool {
    stack.clients.dynamodb.describe_table().table_name(table).send().await.is_ok()
}

#[tokio::test]
async fn run_turns_pitr_back_on_and_prunes_old_backups_but_keeps_the_newest() {
    let stack = TestStack::new().await;
    let table = stack.table();
    let app = stack.app_with(FUNCTION, &[("BACKUP_RETENTION_DAYS", "1"), ("BACKUP_KEEP_NEWEST", "2")]);
    assert_eq!(app.config.backup.tables, vec![table.clone()], "template.yaml names the stack table");

    // Someone turns PITR off by hand.
    let off =
        PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(false).build().unwrap();
    stack
        .clients
        .dynamodb
        .update_continuous_backups()
        .table_name(&table)
        .point_in_time_recovery_specification(off)
        .send()
        .await
        .unwrap();
    assert_eq!(pitr_status(&stack, &table).await, Some(PointInTimeRecoveryStatus::Disabled));

    // The scheduled event.
    let input: Input = serde_json::from_str(&event_file("backup.json")).unwrap();
    let summary = backup::handler(&app, lambda_event(input)).await.expect("backup run");
    let run = &summary["tables"][0];
    assert_eq!(run["table"], table.as_str());
    assert_eq!(run["pitr"]["was_disabled"], true, "the run reports PITR was off: {summary}");
    assert_eq!(run["pitr"]["enabled"], true);
    assert!(run["pitr"]["latest_restorable"].is_string());
    assert!(run["pitr"]["lag_seconds"].as_f64().is_some());
    assert_eq!(pitr_status(&stack, &table).await, Some(PointInTimeRecoveryStatus::Enabled));
    let name = run["backup_name"].as_str().unwrap();
    let stamp = name.strip_prefix(&format!("{table}-")).expect("named <table>-<UTC timestamp>");
    assert!(stamp.len() == 16 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{stamp}");
    let emitted = metrics_for(&table);
    let first = emitted.last().expect("an EMF line");
    assert_eq!((first["PitrWasDisabled"].as_f64(), first["BackupsCreated"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!(first["_aws"]["CloudWatchMetrics"][0]["Namespace"], "CAAS");
    assert_eq!(first["Service"], "backup");

    // Three more daily runs within the retention: nothing is pruned.
    for _ in 0..3 {
        stack.clock.advance(time::Duration::hours(1));
        let summary = invoke(&app, json!({"action": "run"})).await.unwrap();
        assert_eq!(summary["tables"][0]["pitr"]["was_disabled"], false);
        assert_eq!(summary["backups_pruned"], 0);
    }
    let all = caas::backup::list_backups(&app, &table).await.unwrap();
    assert_eq!(all.len(), 4);

    // Two days later every backup is past the 1-day retention: all but the
    // two newest (counting the one this run makes) are deleted.
    stack.clock.advance(time::Duration::days(2));
    let summary = invoke(&app, json!({"action": "run"})).await.unwrap();
    assert_eq!(summary["backups_made"], 1);
    assert_eq!(summary["backups_pruned"], 3, "{summary}");
    assert_eq!(summary["tables"][0]["kept"], 2);
    let mut left = caas::backup::list_backups(&app, &table).await.unwrap();
    left.sort_by_key(|b| b.created_at);
    let mut before = all.clone();
    before.sort_by_key(|b| b.created_at);
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].arn, before[3].arn, "the newest old backup is kept");
    assert_eq!(left[1].name, summary["tables"][0]["backup_name"].as_str().unwrap());
    assert_eq!(metrics_for(&table).last().unwrap()["BackupsPruned"].as_f64(), Some(3.0));
}

#[tokio::test]
async fn drill_verifies_ledger_and_audit_on_the_restored_table_and_fails_on_tampering() {
    let stack = TestStack::new().await;
    let table = stack.table();
    let app = stack.app(FUNCTION);

    // Payments and audit activity in two tenants.
    let api = Api::new(&stack);
    let mut accounts = Vec::new();
    for tenant in ["acme", "beta"] {
        let token = api.token(tenant, &format!("ops@{tenant}.example")).await;
        let (payer, payee) =
            (api.account(&token, "EUR", false).await, api.account(&token, "EUR", false).await);
        api.fund(&token, &payer, 50_000, "EUR").await;
        for amount in [1_000, 2_500] {
            let response = api.authorize(&token, &payer, &payee, amount, "EUR").await;
            let id = parts(&response).1["payment_id"].as_str().unwrap().to_owned();
            assert_eq!(api.capture(&token, &id, None).await.status(), 200);
        }
        accounts.push((tenant, payee));
    }
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    audit_pipeline(&stack, &stream, &queue).await;

    invoke(&app, json!({"action": "run"})).await.expect("backup");
    let report = invoke(&app, json!({"action": "drill"})).await.expect("the drill passes");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["restored_from"]["type"], "backup");
    let scratch = report["scratch_table"].as_str().unwrap();
    assert!(scratch.starts_with(&format!("{table}-drill-")));
    assert!(report["restore_seconds"].as_f64().is_some());
    assert_eq!(report_check(&report, "item_count")["ok"], true);
    assert_eq!(report_check(&report, "ledger")["ok"], true);
    assert!(report_check(&report, "ledger")["detail"]["accounts_checked"].as_u64().unwrap() >= 4);
    let audit = report_check(&report, "audit_chains");
    assert_eq!(audit["ok"], true, "{audit}");
    assert!(audit["detail"]["tenants"].as_u64().unwrap() >= 2);
    assert!(
        audit["detail"]["entries_checked"].as_u64().unwrap() > 0,
        "the audit chains were verified on the copy"
    );
    assert_eq!(report["scratch_table_deleted"], true);
    assert!(!table_exists(&stack, scratch).await, "the scratch table is gone");
    let drill_metrics =
        metrics_for(&table).into_iter().rev().find(|l| l.get("DrillFailures").is_some()).unwrap();
    assert_eq!(drill_metrics["DrillFailures"].as_f64(), Some(0.0));
    assert!(drill_metrics["DrillRestoreSeconds"].as_f64().is_some());

    // A tampered balance, backed up: the drill of that backup fails loudly.
    let (tenant, payee) = &accounts[0];
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(&table)
        .set_key(Some(caas::store::ledger::account_key(tenant, payee)))
        .update_expression("ADD credits_posted :x")
        .expression_attribute_values(":x", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    stack.clock.advance(time::Duration::hours(1));
    invoke(&app, json!({"action": "run"})).await.expect("backup");
    let error = invoke(&app, json!({"action": "drill"})).await.expect_err("the drill fails");
    assert!(error.contains("ledger"), "{error}");
    let drill_metrics =
        metrics_for(&table).into_iter().rev().find(|l| l.get("DrillFailures").is_some()).unwrap();
    assert_eq!(drill_metrics["DrillFailures"].as_f64(), Some(1.0));

    // The same from PITR, with the report at hand: only the ledger check fails.
    match caas::backup::drill(&app, Some(caas::backup::PointInTime::Latest), None, Deadline(0)).await {
        Err(BackupError::DrillFailed { report, .. }) => {
            let report = serde_json::to_value(&report).unwrap();
            assert_eq!(report["restored_from"]["type"], "point_in_time");
            assert_eq!(report_check(&report, "ledger")["ok"], false);
            assert_eq!(report_check(&report, "audit_chains")["ok"], true);
            assert_eq!(report_check(&report, "item_count")["ok"], true);
            assert_eq!(report["scratch_table_deleted"], true);
        }
        other => panic!("expected a failed drill, got {other:?}"),
    }
}

#[tokio::test]
async fn restore_reapplies_what_a_restore_drops_and_prints_the_switch_steps() {
    let stack = TestStack::new().await;
    let table = stack.table();
    let app = stack.app(FUNCTION);
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;

    let refused = invoke(&app, json!({"action": "restore", "target_table": "elsewhere"})).await;
    assert!(refused.unwrap_err().contains(&format!("{table}-restore-")));
    let bad_time = invoke(
        &app,
        json!({"action": "restore", "target_table": format!("{table}-restore-x"), "point_in_time": "noon"}),
    )
    .await;
    assert!(bad_time.is_err());

    let target = format!("{table}-restore-1");
    let report =
        invoke(&app, json!({"action": "restore", "target_table": target, "point_in_time": "latest"}))
            .await
            .expect("restore");
    assert_eq!(report["status"], "ready", "{report}");
    let reapplied: Vec<&str> =
        report["reapplied"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(reapplied, ["ttl:expires_at", "stream:NEW_AND_OLD_IMAGES", "point_in_time_recovery"]);
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{report}");
    // The erasure list is re-applied before the copy is reported ready (none here;
    // tests/privacy.rs erases people and drills).
    assert_eq!(report["erasures"]["erasures"], 0, "{report}");
    assert_eq!(report_check(&report, "erasures")["ok"], true);
    let steps: Vec<&str> =
        report["switch_steps"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(steps.iter().any(|s| s.contains(&format!("--target-table-name {table} "))));

    let dynamodb = &stack.clients.dynamodb;
    let ttl = dynamodb.describe_time_to_live().table_name(&target).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    let described = dynamodb.describe_table().table_name(&target).send().await.unwrap();
    assert!(described.table().unwrap().stream_specification().is_some_and(|s| s.stream_enabled()));
    assert_eq!(pitr_status(&stack, &target).await, Some(PointInTimeRecoveryStatus::Enabled));

    // Invoking the same restore again finishes nothing twice.
    let again = invoke(&app, json!({"action": "restore", "target_table": target})).await.expect("idempotent");
    assert_eq!(again["status"], "ready");
    assert!(again["reapplied"].as_array().unwrap().is_empty());
    dynamodb.delete_table().table_name(&target).send().await.unwrap();
}

/// What a restore re-applies comes from the store's constants; the table of
/// template.yaml must declare the same TTL attribute and stream view type.
#[test]
fn template_declares_the_ttl_attribute_and_stream_view_a_restore_reapplies() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml");
    let template: serde_norway::Value = serde_norway::from_str(&text).expect("template.yaml parses");
    let table = &template["Resources"]["Table"]["Properties"];
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(caas::store::TTL_ATTRIBUTE));
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some(caas::store::STREAM_VIEW.as_str())
    );
}
