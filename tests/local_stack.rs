//! The run command end to end: `scripts/run` (the README's command, with the dev
//! profile, free ports and the test run's emulator from AWS_ENDPOINT_URL) runs as a
//! child process; the tests talk to it over real HTTP only — the HTTP API, the Lambda
//! Invoke API and its `/local/` endpoints — and stop it with SIGINT.

use caas_local::Template;
use caas_local::http::request;
use caas_tests::repo_root;
use caas_tests::running_stack::{EVENTUAL_WITHIN, RunningStack, eventually, stack_process_alive};
use serde_json::{Value, json};
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread")]
async fn the_run_command_serves_the_demo_flow_and_stops_cleanly() {
    let mut stack = RunningStack::start();
    let template = Template::load(repo_root().join("template.yaml")).expect("template.yaml");
    let tenant = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    // The operator's step: the tenant, open to signup, through the Invoke API.
    let create = json!({ "action": "create", "tenant_id": tenant, "name": "Demo", "signup": "open", "owner_email": "owner@example.com" });
    let created = stack.invoke("TenantsFunction", &create).await;
    assert_eq!(created.status, 200);
    assert_eq!(created.header("x-amz-function-error"), None, "tenant create failed: {:?}", created.json());
    assert_eq!(created.json()["tenant"]["signup"], "open");

    // Register the owner with the owner invitation, and log in.
    let user = json!({ "tenant_id": tenant, "email": "owner@example.com", "password": "correct horse battery staple" });
    let mut registration = user.clone();
    registration["invitation"] = created.json()["owner_invitation"]["token"].clone();
    let registered = stack.api("POST", "/v1/users", None, Some(&registration)).await;
    assert_eq!(registered.status, 201, "{:?}", registered.json());
    let login = stack.api("POST", "/v1/auth/login", None, Some(&user)).await;
    assert_eq!(login.status, 200, "{:?}", login.json());
    let token = login.json()["access_token"].as_str().expect("access token").to_owned();

    // Accounts, then a payment authorized and captured.
    let account = async |body: Value| {
        let created = stack.api("POST", "/v1/accounts", Some(&token), Some(&body)).await;
        assert_eq!(created.status, 201, "{:?}", created.json());
        created.json()["account_id"].as_str().expect("account id").to_owned()
    };
    // An overdraft is the owner's (or an admin's) to give, always with a limit.
    let funding = account(json!({ "currency": "USD", "allow_overdraft": true, "overdraft_limit": 1_000_000, "name": "funding" })).await;
    let alice = account(json!({ "currency": "USD", "name": "alice" })).await;
    let payment = json!({ "amount": 10_000, "currency": "USD", "payer_account_id": funding, "payee_account_id": alice });
    let authorized = stack.api("POST", "/v1/payments", Some(&token), Some(&payment)).await;
    assert_eq!(authorized.status, 201, "{:?}", authorized.json());
    assert_eq!(authorized.json()["status"], "authorized");
    let payment_id = authorized.json()["payment_id"].as_str().expect("payment id").to_owned();
    let captured = stack
        .api("POST", &format!("/v1/payments/{payment_id}/capture"), Some(&token), Some(&json!({})))
        .await;
    assert_eq!(captured.status, 200, "{:?}", captured.json());
    assert_eq!(captured.json()["status"], "captured");

    // Balances.
    let balance = stack.api("GET", &format!("/v1/accounts/{alice}"), Some(&token), None).await;
    assert_eq!(balance.status, 200);
    assert_eq!(
        balance.json()["balance"],
        json!({ "posted": 10_000, "pending_debits": 0, "pending_credits": 0, "available": 10_000 })
    );
    let funding_balance = stack.api("GET", &format!("/v1/accounts/{funding}"), Some(&token), None).await;
    assert_eq!(funding_balance.json()["balance"]["posted"], -10_000);

    // The capture's outbox event goes table → stream poller → outbox-drain → events
    // queue → queue poller → audit-writer → the tenant's audit chain.
    let entries = eventually("payment.captured in the audit chain", async || {
        let page = stack.api("GET", "/v1/audit/events", Some(&token), None).await;
        let entries = page.json()["entries"].as_array().cloned().unwrap_or_default();
        entries.iter().any(|e| e["type"] == "payment.captured").then_some(entries)
    })
    .await;
    let types: BTreeSet<&str> = entries.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in ["user.registered", "account.created", "payment.authorized", "payment.captured"] {
        assert!(types.contains(expected), "{expected} missing from the audit chain: {types:?}");
    }
    let verified = stack.api("GET", "/v1/audit/verify", Some(&token), None).await;
    assert_eq!(verified.status, 200, "{:?}", verified.json());
    assert_eq!(verified.json()["ok"], true, "{:?}", verified.json());
    assert!(verified.json()["entries_checked"].as_u64().unwrap_or_default() >= entries.len() as u64);
    let output = stack.output().to_vec();
    let ran = |function: &str, trigger: &str| {
        output.iter().any(|l| l.contains(function) && l.contains(trigger) && l.contains(" ok "))
    };
    assert!(ran("OutboxDrainFunction", "stream "), "no stream invocation of the drain in the output");
    assert!(ran("AuditWriterFunction", "sqs "), "no queue invocation of the audit writer in the output");

    // Jobs through the Invoke API.
    let functions: BTreeSet<String> = template.functions().into_iter().map(|f| f.logical_id).collect();
    if functions.contains("BackupFunction") {
        let backup = stack.invoke("BackupFunction", &json!({ "action": "run" })).await;
        assert_eq!(backup.status, 200);
        assert_eq!(backup.header("x-amz-function-error"), None, "backup failed: {:?}", backup.json());
    }
    if functions.contains("MigrateFunction") {
        let status = stack.invoke("MigrateFunction", &json!({ "action": "status" })).await;
        assert_eq!(status.status, 200);
        assert_eq!(status.header("x-amz-function-error"), None, "migrate status failed: {:?}", status.json());
        assert!(status.json().get("current_version").is_some(), "{:?}", status.json());
    }
    let verify = stack.invoke("VerifyFunction", &json!({})).await;
    assert_eq!(verify.status, 200);
    assert_eq!(verify.header("x-amz-function-error"), None, "verify failed: {:?}", verify.json());
    let fired = request("POST", &format!("{}/local/schedules/VerifyFunction", stack.invoke), &[], "")
        .await
        .expect("fire");
    assert_eq!(fired.status, 200, "{:?}", fired.json());
    let unknown = stack.invoke("NoSuchFunction", &json!({})).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-amzn-errortype"), Some("ResourceNotFoundException"));

    // Ctrl-C: every process the stack started is gone.
    let (exit, pids) = stack.stop();
    assert!(exit.success(), "the stack exited with {exit}");
    assert!(!pids.is_empty(), "the stack reported no processes");
    let left: Vec<u32> = pids.into_iter().filter(|pid| stack_process_alive(*pid)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_routes_are_the_templates() {
    let mut stack = RunningStack::start();
    let template = Template::load(repo_root().join("template.yaml")).expect("template.yaml");
    let expected: BTreeSet<(String, String, String)> =
        template.http_routes().into_iter().map(|r| (r.method, r.path, r.function_logical_id)).collect();

    let listed =
        request("GET", &format!("{}/local/routes", stack.invoke), &[], "").await.expect("route table");
    let served: BTreeSet<(String, String, String)> = listed
        .json()
        .as_array()
        .expect("a list of routes")
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("method"), text("path"), text("function"))
        })
        .collect();
    assert_eq!(served, expected);

    // Every route reaches its function: an answer, never the gateway's own 404.
    for (method, path, function) in &expected {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let body = (method == "POST").then(|| json!({}));
        let response = stack.api(method, &concrete, None, body.as_ref()).await;
        assert!(
            response.json() != json!({ "message": "Not Found" }),
            "{method} {path} did not reach {function}"
        );
        let line = format!("{function} ");
        let trigger = format!("http {method} {path}");
        stack
            .wait_for_line(EVENTUAL_WITHIN, |l| l.contains(&line) && l.contains(&trigger))
            .unwrap_or_else(|| panic!("no invocation line for {function} ({trigger})"));
    }
    let missing = stack.api("GET", "/v1/no-such-route", None, None).await;
    assert_eq!((missing.status, missing.json()), (404, json!({ "message": "Not Found" })));

    let (exit, pids) = stack.stop();
    assert!(exit.success(), "the stack exited with {exit}");
    let left: Vec<u32> = pids.into_iter().filter(|pid| stack_process_alive(*pid)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}
