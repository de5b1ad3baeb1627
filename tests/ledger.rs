//! The ledger a platform needs, against the emulator: account states and
//! limits (frozen, closed, the overdraft limit changed by an administrator),
//! holds that expire (the expiry job, a capture racing it).

use caas_tests::api::{Api, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

async fn verify(stack: &TestStack, tenant: &str) -> caas::ledger::verify::LedgerReport {
    let app = stack.app("VerifyFunction");
    let event =
        lambda_runtime::LambdaEvent::new(json!({ "tenant_id": tenant }), lambda_runtime::Context::default());
    verify::handler(&app, event).await.expect("verify runs").ledger
}

async fn patch_account(api: &Api<'_>, token: &str, account: &str, body: Value) -> Response<Body> {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let body = body.to_string();
    let request = api_event("PATCH", "/v1/accounts/{id}", &[("id", account)], &[], &headers, Some(&body));
    api.call("UpdateAccountFunction", request).await
}

fn payment_id(response: &Response<Body>) -> String {
    let (status, body) = parts(response);
    assert_eq!(status, 201, "{body}");
    body["payment_id"].as_str().expect("payment id").to_owned()
}

#[tokio::test]
async fn a_frozen_account_takes_credits_and_releases_but_no_debits() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let member = api.token("acme", "member@acme.example").await;
    let wallet = api.account(&member, "USD", false).await;
    let shop = api.account(&member, "USD", false).await;
    api.fund(&member, &wallet, 10_000, "USD").await;
    let held = payment_id(&api.authorize(&member, &wallet, &shop, 1_000, "USD").await);
    let to_capture = payment_id(&api.authorize(&member, &wallet, &shop, 2_000, "USD").await);
    api.fund(&member, &shop, 5_000, "USD").await;
    let incoming = payment_id(&api.authorize(&member, &shop, &wallet, 500, "USD").await);

    // Only owners and admins change accounts.
    assert_problem(&patch_account(&api, &member, &wallet, json!({"status": "frozen"})).await, 403);
    let (status, frozen) = parts(&patch_account(&api, &owner, &wallet, json!({"status": "frozen"})).await);
    assert_eq!((status, frozen["status"].as_str()), (200, Some("frozen")), "{frozen}");

    // No new hold, no capture (a posted debit), no refund out of it.
    let refused = assert_problem(&api.authorize(&member, &wallet, &shop, 10, "USD").await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("payer account is frozen"), "{refused}");
    assert_problem(&api.capture(&member, &to_capture, None).await, 409);
    // Credits land: a payment into it, captured; a release: a void of a hold on it.
    assert_eq!(api.capture(&member, &incoming, None).await.status(), 200);
    assert_eq!(api.void(&member, &held).await.status(), 200);
    assert_eq!(api.balance(&member, &wallet).await["available"], 10_000 - 2_000 + 500);

    // Reactivated, it pays again.
    let (status, active) = parts(&patch_account(&api, &owner, &wallet, json!({"status": "active"})).await);
    assert_eq!((status, active["status"].as_str()), (200, Some("active")));
    assert_eq!(api.capture(&member, &to_capture, None).await.status(), 200);
    assert!(verify(&stack, "acme").await.ok);
}

#[tokio::test]
async fn an_account_closes_only_when_settled_and_then_takes_nothing() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let member = api.token("acme", "closer@acme.example").await;
    let wallet = api.account(&member, "USD", false).await;
    let other = api.account(&member, "USD", false).await;
    let funding = api.fund(&member, &wallet, 300, "USD").await;

    let not_settled = json!({"status": "closed"});
    let refused = assert_problem(&patch_account(&api, &owner, &wallet, not_settled.clone()).await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("zero balance"), "{refused}");
    // Spend it all, with a hold pending first: still not closable.
    let hold = payment_id(&api.authorize(&member, &wallet, &other, 300, "USD").await);
    assert_problem(&patch_account(&api, &owner, &wallet, not_settled.clone()).await, 409);
    assert_eq!(api.capture(&member, &hold, None).await.status(), 200);
    let (status, closed) = parts(&patch_account(&api, &owner, &wallet, not_settled.clone()).await);
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    // Closing again changes nothing; reopening or a limit is refused.
    assert_eq!(patch_account(&api, &owner, &wallet, not_settled).await.status(), 200);
    assert_problem(&patch_account(&api, &owner, &wallet, json!({"status": "active"})).await, 409);

    // Nothing lands, not even a credit.
    let refused = assert_problem(&api.authorize(&owner, &funding, &wallet, 10, "USD").await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("payee account is closed"), "{refused}");
    assert_problem(&api.authorize(&member, &wallet, &other, 1, "USD").await, 409);
    assert_eq!(
        api.balance(&member, &wallet).await,
        json!({"posted": 0, "pending_debits": 0, "pending_credits": 0, "available": 0})
    );
    assert!(verify(&stack, "acme").await.ok);
}

#[tokio::test]
async fn an_overdraft_limit_changes_but_never_below_the_current_overdraft() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let member = api.token("acme", "limits@acme.example").await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({"currency": "USD", "allow_overdraft": true, "overdraft_limit": 1_000});
    let (status, created) =
        parts(&api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &body).await);
    assert_eq!(status, 201, "{created}");
    let credit_line = created["account_id"].as_str().unwrap().to_owned();
    let shop = api.account(&member, "USD", false).await;
    let spent = payment_id(&api.authorize(&owner, &credit_line, &shop, 800, "USD").await);
    assert_eq!(api.capture(&owner, &spent, None).await.status(), 200);

    // The overdraft is 800: 799 is refused, 800 is allowed, then nothing more can go out.
    let refused = assert_problem(
        &patch_account(&api, &owner, &credit_line, json!({"overdraft_limit": 799})).await,
        409,
    );
    assert!(refused["detail"].as_str().unwrap().contains("(800 minor units)"), "{refused}");
    let (status, lowered) =
        parts(&patch_account(&api, &owner, &credit_line, json!({"overdraft_limit": 800})).await);
    assert_eq!((status, lowered["overdraft_limit"].as_i64()), (200, Some(800)), "{lowered}");
    assert_problem(&api.authorize(&owner, &credit_line, &shop, 1, "USD").await, 422);
    let raised =
        patch_account(&api, &owner, &credit_line, json!({"overdraft_limit": 900, "status": "active"}));
    assert_eq!(raised.await.status(), 200);
    assert_eq!(api.authorize(&owner, &credit_line, &shop, 100, "USD").await.status(), 201);

    // A limit needs an overdraft account; bad bodies are 400; unknown accounts 404.
    assert_problem(&patch_account(&api, &owner, &shop, json!({"overdraft_limit": 5})).await, 409);
    for bad in
        [json!({}), json!({"status": "open"}), json!({"overdraft_limit": 0}), json!({"x": 1}), json!([])]
    {
        assert_problem(&patch_account(&api, &owner, &shop, bad).await, 400);
    }
    let unknown = caas::ids::new_id();
    assert_problem(&patch_account(&api, &owner, &unknown, json!({"status": "frozen"})).await, 404);
    let foreign = api.treasurer("globex").await;
    assert_problem(&patch_account(&api, &foreign, &shop, json!({"status": "frozen"})).await, 404);
    assert!(verify(&stack, "acme").await.ok);
}

async fn expire(stack: &TestStack, limit: u32) -> caas::payments::expiry::ExpiryReport {
    let payload: Value = serde_json::from_str(&event_file("expire-holds.json")).unwrap();
    let mut payload = payload;
    payload["limit"] = json!(limit);
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    expire_holds::handler(&stack.app("ExpireHoldsFunction"), event).await.expect("expire-holds runs")
}

async fn authorize_until(
    api: &Api<'_>,
    token: &str,
    payer: &str,
    payee: &str,
    until: Option<&str>,
) -> Response<Body> {
    let key = uuid::Uuid::new_v4().to_string();
    let mut body =
        json!({ "amount": 1_000, "currency": "USD", "payer_account_id": payer, "payee_account_id": payee });
    if let Some(until) = until {
        body["capture_before"] = json!(until);
    }
    api.post("CreatePaymentFunction", "/v1/payments", None, token, Some(&key), &body).await
}

#[tokio::test]
async fn holds_expire_through_the_ledger_and_are_not_captured_after() {
    use caas::clock::Clock;
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let member = api.token("acme", "holds@acme.example").await;
    let (wallet, shop) = (api.account(&member, "USD", false).await, api.account(&member, "USD", false).await);
    api.fund(&member, &wallet, 10_000, "USD").await;
    let now = stack.clock.now();
    let text = |at: time::OffsetDateTime| caas::clock::rfc3339(at);

    // The deadline: 7 days by default, at most 30, never in the past.
    let (status, default) = parts(&authorize_until(&api, &member, &wallet, &shop, None).await);
    assert_eq!(status, 201, "{default}");
    assert_eq!(default["capture_before"], text(now + time::Duration::days(7)));
    for late in [text(now - time::Duration::seconds(1)), text(now + time::Duration::days(31))] {
        let problem = assert_problem(&authorize_until(&api, &member, &wallet, &shop, Some(&late)).await, 422);
        assert!(problem["detail"].as_str().unwrap().starts_with("capture_before"), "{late}: {problem}");
    }
    let problem =
        assert_problem(&authorize_until(&api, &member, &wallet, &shop, Some("tomorrow")).await, 400);
    assert_eq!(problem["field"], "capture_before", "{problem}");
    let soon = text(now + time::Duration::hours(1));
    let (early, late) = (
        payment_id(&authorize_until(&api, &member, &wallet, &shop, Some(&soon)).await),
        payment_id(&authorize_until(&api, &member, &wallet, &shop, Some(&soon)).await),
    );
    let captured = payment_id(&authorize_until(&api, &member, &wallet, &shop, Some(&soon)).await);
    assert_eq!(api.capture(&member, &captured, None).await.status(), 200);
    assert_eq!(api.balance(&member, &wallet).await["pending_debits"], 3_000);

    // Nothing has expired yet; then the deadline passes: capture is refused.
    assert_eq!(expire(&stack, 100).await.expired, 0);
    stack.clock.advance(time::Duration::hours(1));
    let member = api.login("acme", "holds@acme.example").await;
    let refused = assert_problem(&api.capture(&member, &early, None).await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("authorization expired"), "{refused}");

    // The job releases them, one run at a time (its limit), never twice.
    let first = expire(&stack, 1).await;
    assert_eq!((first.expired, first.more), (1, true), "{first:?}");
    let rest = expire(&stack, 100).await;
    assert_eq!((rest.expired, rest.more), (1, false), "{rest:?}");
    assert_eq!(expire(&stack, 100).await, caas::payments::expiry::ExpiryReport::default());
    for id in [&early, &late] {
        let (_, payment) = parts(&api.get("GetPaymentFunction", "/v1/payments/{id}", id, &member, &[]).await);
        assert_eq!(payment["status"], "expired", "{payment}");
        let events: Vec<&str> =
            payment["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(events, ["payment.authorized", "payment.expired"]);
    }
    assert_problem(&api.capture(&member, &late, None).await, 409);
    assert_eq!(api.balance(&member, &wallet).await["pending_debits"], 1_000, "the default hold stays");
    assert_eq!(api.balance(&member, &shop).await["pending_credits"], 1_000);
    let types: Vec<String> = stored_events(&stack, "acme").await.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types.iter().filter(|t| *t == "payment.expired").count(), 2);
    assert!(verify(&stack, "acme").await.ok);
}

/// A capture (its clock just before the deadline) and the expiry job (just
/// after) race on the same holds: for each, exactly one commits.
#[tokio::test]
async fn a_capture_racing_the_expiry_exactly_one_wins() {
    use caas::clock::{Clock, ManualClock};
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let member = api.token("acme", "racer@acme.example").await;
    let (wallet, shop) = (api.account(&member, "USD", false).await, api.account(&member, "USD", false).await);
    api.fund(&member, &wallet, 100_000, "USD").await;
    let now = stack.clock.now();
    let deadline = caas::clock::rfc3339(now + time::Duration::seconds(60));
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(payment_id(&authorize_until(&api, &member, &wallet, &shop, Some(&deadline)).await));
    }
    let capturing = api.app("CapturePaymentFunction");
    let behind = std::sync::Arc::new(ManualClock::new(now + time::Duration::seconds(59)));
    let capturer = caas::App::with_clock(capturing.config.clone(), capturing.clients.clone(), behind);
    stack.clock.advance(time::Duration::seconds(61));

    let bearer = format!("Bearer {member}");
    let captures = ids.iter().map(|id| {
        let (capturer, bearer) = (&capturer, &bearer);
        async move {
            let key = uuid::Uuid::new_v4().to_string();
            let headers = [
                ("authorization", bearer.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", key.as_str()),
            ];
            let request =
                api_event("POST", "/v1/payments/{id}/capture", &[("id", id)], &[], &headers, Some("{}"));
            caas_tests::api::dispatch(capturer, "CapturePaymentFunction", request).await
        }
    });
    let (captured, report) = tokio::join!(futures::future::join_all(captures), expire(&stack, 100));
    let mut wins = 0;
    for (id, response) in ids.iter().zip(&captured) {
        let (status, body) = parts(response);
        let (_, payment) = parts(&api.get("GetPaymentFunction", "/v1/payments/{id}", id, &member, &[]).await);
        match status {
            200 => assert_eq!(payment["status"], "captured"),
            409 => assert_eq!(payment["status"], "expired", "{body}"),
            other => panic!("capture answered {other}: {body}"),
        }
        wins += u32::from(status == 200);
    }
    assert_eq!(wins + report.expired, 8, "{report:?}");
    assert_eq!(api.balance(&member, &wallet).await["pending_debits"], 0);
    assert_eq!(api.balance(&member, &shop).await["posted"], i64::from(wins) * 1_000);
    assert!(verify(&stack, "acme").await.ok);
}
