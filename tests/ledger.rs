//! The ledger a platform needs, against the emulator: account states and
//! limits (frozen, closed, the overdraft limit changed by an administrator),
//! holds that expire (the expiry job, a capture racing it), split payments
//! (every leg in one transaction, pro rata to the minor unit, 45 legs in
//! the same round trips), balances as of a time and statements over seeded
//! history (the same calls for any length of history).

use caas_tests::api::{Api, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

#[tokio::test]
async fn a_frozen_account_takes_credits_and_releases_but_no_debits() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_a_frozen_account_takes_credits_and_releases_but_no_debits()).await
}

async fn scenario_a_frozen_account_takes_credits_and_releases_but_no_debits() {
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
    assert_problem(&api.patch_account(&member, &wallet, json!({"status": "frozen"})).await, 403);
    let (status, frozen) = parts(&api.patch_account(&owner, &wallet, json!({"status": "frozen"})).await);
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
    let (status, active) = parts(&api.patch_account(&owner, &wallet, json!({"status": "active"})).await);
    assert_eq!((status, active["status"].as_str()), (200, Some("active")));
    assert_eq!(api.capture(&member, &to_capture, None).await.status(), 200);
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

#[tokio::test]
async fn an_account_closes_only_when_settled_and_then_takes_nothing() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_an_account_closes_only_when_settled_and_then_takes_nothing()).await
}

async fn scenario_an_account_closes_only_when_settled_and_then_takes_nothing() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let member = api.token("acme", "closer@acme.example").await;
    let wallet = api.account(&member, "USD", false).await;
    let other = api.account(&member, "USD", false).await;
    let funding = api.fund(&member, &wallet, 300, "USD").await;

    let not_settled = json!({"status": "closed"});
    let refused = assert_problem(&api.patch_account(&owner, &wallet, not_settled.clone()).await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("zero balance"), "{refused}");
    // Spend it all, with a hold pending first: still not closable.
    let hold = payment_id(&api.authorize(&member, &wallet, &other, 300, "USD").await);
    assert_problem(&api.patch_account(&owner, &wallet, not_settled.clone()).await, 409);
    assert_eq!(api.capture(&member, &hold, None).await.status(), 200);
    let (status, closed) = parts(&api.patch_account(&owner, &wallet, not_settled.clone()).await);
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    // Closing again changes nothing; reopening or a limit is refused.
    assert_eq!(api.patch_account(&owner, &wallet, not_settled).await.status(), 200);
    assert_problem(&api.patch_account(&owner, &wallet, json!({"status": "active"})).await, 409);

    // Nothing lands, not even a credit.
    let refused = assert_problem(&api.authorize(&owner, &funding, &wallet, 10, "USD").await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("payee account is closed"), "{refused}");
    assert_problem(&api.authorize(&member, &wallet, &other, 1, "USD").await, 409);
    assert_eq!(
        api.balance(&member, &wallet).await,
        json!({"posted": 0, "pending_debits": 0, "pending_credits": 0, "available": 0})
    );
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

#[tokio::test]
async fn an_overdraft_limit_changes_but_never_below_the_current_overdraft() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_an_overdraft_limit_changes_but_never_below_the_current_overdraft()).await
}

async fn scenario_an_overdraft_limit_changes_but_never_below_the_current_overdraft() {
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
    let refused =
        assert_problem(&api.patch_account(&owner, &credit_line, json!({"overdraft_limit": 799})).await, 409);
    assert!(refused["detail"].as_str().unwrap().contains("(800 minor units)"), "{refused}");
    let (status, lowered) =
        parts(&api.patch_account(&owner, &credit_line, json!({"overdraft_limit": 800})).await);
    assert_eq!((status, lowered["overdraft_limit"].as_i64()), (200, Some(800)), "{lowered}");
    assert_problem(&api.authorize(&owner, &credit_line, &shop, 1, "USD").await, 422);
    let raised = api.patch_account(&owner, &credit_line, json!({"overdraft_limit": 900, "status": "active"}));
    assert_eq!(raised.await.status(), 200);
    assert_eq!(api.authorize(&owner, &credit_line, &shop, 100, "USD").await.status(), 201);

    // A limit needs an overdraft account; bad bodies are 400; unknown accounts 404.
    assert_problem(&api.patch_account(&owner, &shop, json!({"overdraft_limit": 5})).await, 409);
    for bad in
        [json!({}), json!({"status": "open"}), json!({"overdraft_limit": 0}), json!({"x": 1}), json!([])]
    {
        assert_problem(&api.patch_account(&owner, &shop, bad).await, 400);
    }
    let unknown = caas::ids::new_id();
    assert_problem(&api.patch_account(&owner, &unknown, json!({"status": "frozen"})).await, 404);
    let foreign = api.treasurer("globex").await;
    assert_problem(&api.patch_account(&foreign, &shop, json!({"status": "frozen"})).await, 404);
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
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
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_holds_expire_through_the_ledger_and_are_not_captured_after()).await
}

async fn scenario_holds_expire_through_the_ledger_and_are_not_captured_after() {
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
    let far = authorize_until(&api, &member, &wallet, &shop, Some("9999-12-31T23:59:59-23:59")).await;
    assert_problem(&far, 422);
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
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

/// A capture (its clock just before the deadline) and the expiry job (just
/// after) race on the same holds: for each, exactly one commits.
#[tokio::test]
async fn a_capture_racing_the_expiry_exactly_one_wins() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_a_capture_racing_the_expiry_exactly_one_wins()).await
}

async fn scenario_a_capture_racing_the_expiry_exactly_one_wins() {
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
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

async fn split_payment(
    api: &Api<'_>,
    token: &str,
    payer: &str,
    amount: i64,
    legs: &[(&str, i64)],
    key: &str,
) -> Response<Body> {
    let splits: Vec<Value> =
        legs.iter().map(|(id, part)| json!({"account_id": id, "amount": part})).collect();
    let body = json!({"amount": amount, "currency": "USD", "payer_account_id": payer, "splits": splits});
    api.post("CreatePaymentFunction", "/v1/payments", None, token, Some(key), &body).await
}

#[tokio::test]
async fn a_split_payment_moves_every_leg_in_one_transaction_to_the_minor_unit() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_a_split_payment_moves_every_leg_in_one_transaction_to_the_minor_unit()).await
}

async fn scenario_a_split_payment_moves_every_leg_in_one_transaction_to_the_minor_unit() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let member = api.token("acme", "buyer@acme.example").await;
    let seller = api.token("acme", "seller@acme.example").await;
    let wallet = api.account(&member, "USD", false).await;
    api.fund(&member, &wallet, 10_000, "USD").await;
    let (shop, courier) =
        (api.account(&seller, "USD", false).await, api.account(&seller, "USD", false).await);
    let key = uuid::Uuid::new_v4().to_string();
    let tenant_fee = json!({"currency": "USD", "owner": {"type": "tenant"}});
    let (_, fee) = parts(
        &api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &tenant_fee).await,
    );
    let fee = fee["account_id"].as_str().unwrap().to_owned();

    // Bad splits: the sum, a repeated account, the payer, both payee forms.
    let bad = |legs: Vec<(String, i64)>| {
        let (api, member, wallet) = (&api, &member, &wallet);
        async move {
            let key = uuid::Uuid::new_v4().to_string();
            let legs: Vec<(&str, i64)> = legs.iter().map(|(id, part)| (id.as_str(), *part)).collect();
            split_payment(api, member, wallet, 1_000, &legs, &key).await
        }
    };
    let (s, f, w) = (shop.clone(), fee.clone(), wallet.clone());
    assert_problem(&bad(vec![(s.clone(), 600), (f.clone(), 300)]).await, 422);
    assert_problem(&bad(vec![(s.clone(), 500), (s.clone(), 500)]).await, 422);
    assert_problem(&bad(vec![(s.clone(), 500), (w, 500)]).await, 422);
    assert_problem(&bad(vec![]).await, 400);
    let both = json!({"amount": 10, "currency": "USD", "payer_account_id": wallet, "payee_account_id": shop,
        "splits": [{"account_id": shop, "amount": 10}]});
    let key = uuid::Uuid::new_v4().to_string();
    assert_problem(
        &api.post("CreatePaymentFunction", "/v1/payments", None, &member, Some(&key), &both).await,
        400,
    );

    // 1,000 to the shop 700, the courier 200, the platform's fee 100; capture 999.
    let key = uuid::Uuid::new_v4().to_string();
    let legs = [(shop.as_str(), 700), (courier.as_str(), 200), (fee.as_str(), 100)];
    let (status, payment) = parts(&split_payment(&api, &member, &wallet, 1_000, &legs, &key).await);
    assert_eq!(status, 201, "{payment}");
    let id = payment["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(payment["payee_account_id"], shop.as_str());
    assert_eq!(api.balance(&seller, &courier).await["pending_credits"], 200);
    let (status, captured) = parts(&api.capture(&member, &id, Some(999)).await);
    assert_eq!(status, 200, "{captured}");
    let parts_of = |payment: &Value, field: &str| -> Vec<i64> {
        payment["splits"].as_array().unwrap().iter().map(|leg| leg[field].as_i64().unwrap()).collect()
    };
    // Largest remainder: 699.3, 199.8, 99.9 → 699, 200, 100.
    assert_eq!(parts_of(&captured, "captured_amount"), [699, 200, 100]);
    assert_eq!(api.balance(&member, &wallet).await["posted"], 10_000 - 999);
    let posted = |token: String, account: String| {
        let api = &api;
        async move { api.balance(&token, &account).await["posted"].as_i64().unwrap() }
    };
    assert_eq!(posted(seller.clone(), shop.clone()).await, 699);
    assert_eq!(posted(seller.clone(), courier.clone()).await, 200);
    assert_eq!(posted(owner.clone(), fee.clone()).await, 100);

    // One transaction for every leg: one ledger transaction with 4 postings.
    let (_, entries) = parts(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &fee, &owner, &[]).await,
    );
    let capture_tx = entries["items"][0]["tx_id"].as_str().unwrap().to_owned();
    let (_, shop_entries) = parts(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &shop, &seller, &[]).await,
    );
    assert_eq!(shop_entries["items"][0]["tx_id"], capture_tx.as_str());

    // The courier refunds its own leg; a pro rata refund of several legs needs the owner role.
    let key = uuid::Uuid::new_v4().to_string();
    let courier_refund = json!({"amount": 50, "account_id": courier});
    let route = "/v1/payments/{id}/refunds";
    let (status, refunded) = parts(
        &api.post("RefundPaymentFunction", route, Some(&id), &seller, Some(&key), &courier_refund).await,
    );
    assert_eq!(status, 201, "{refunded}");
    assert_eq!(parts_of(&refunded, "refunded_amount"), [0, 50, 0]);
    let key = uuid::Uuid::new_v4().to_string();
    let pro_rata = json!({"amount": 949});
    assert_problem(
        &api.post("RefundPaymentFunction", route, Some(&id), &seller, Some(&key), &pro_rata).await,
        403,
    );
    let (status, rest) =
        parts(&api.post("RefundPaymentFunction", route, Some(&id), &owner, Some(&key), &pro_rata).await);
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["status"], "refunded");
    assert_eq!(parts_of(&rest, "refunded_amount"), [699, 200, 100]);
    assert_eq!(api.balance(&member, &wallet).await["posted"], 10_000);
    for (token, account) in [(&seller, &shop), (&seller, &courier), (&owner, &fee)] {
        assert_eq!(posted(token.clone(), account.clone()).await, 0);
    }
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok && report.unbalanced_transactions.is_empty(), "{report:?}");
}

/// The largest split (45 legs, a role re-checked: 99 actions) costs what a
/// payment to one payee does: 2 round trips fresh, 1 replayed.
#[tokio::test]
async fn forty_five_legs_in_the_same_round_trips() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_forty_five_legs_in_the_same_round_trips()).await
}

async fn scenario_forty_five_legs_in_the_same_round_trips() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let funding = api.account(&owner, "USD", true).await;
    let mut legs = Vec::new();
    for _ in 0..caas::payments::MAX_SPLITS {
        legs.push(api.account(&owner, "USD", false).await);
    }
    let split: Vec<(&str, i64)> = legs.iter().map(|id| (id.as_str(), 1_001)).collect();
    let total = 1_001 * i64::try_from(split.len()).unwrap();
    let counter = &stack.round_trips;
    let key = uuid::Uuid::new_v4().to_string();
    counter.reset();
    let (status, payment) = parts(&split_payment(&api, &owner, &funding, total, &split, &key).await);
    assert_eq!(status, 201, "{payment}");
    assert_eq!(counter.operations("dynamodb"), ["BatchGetItem", "TransactWriteItems"]);
    counter.reset();
    let replay = split_payment(&api, &owner, &funding, total, &split, &key).await;
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(counter.operations("dynamodb"), ["BatchGetItem"]);

    let id = payment["payment_id"].as_str().unwrap().to_owned();
    counter.reset();
    let (status, captured) = parts(&api.capture(&owner, &id, Some(total - 7)).await);
    assert_eq!(status, 200, "{captured}");
    assert_eq!(counter.operations("dynamodb"), ["BatchGetItem", "TransactWriteItems"]);
    let parts: Vec<i64> = captured["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["captured_amount"].as_i64().unwrap())
        .collect();
    assert_eq!(parts.iter().sum::<i64>(), total - 7);
    assert!(parts.iter().all(|part| (1_000..=1_001).contains(part)), "{parts:?}");
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
    let too_many: Vec<(&str, i64)> = vec![(legs[0].as_str(), 1); caas::payments::MAX_SPLITS + 1];
    let key = uuid::Uuid::new_v4().to_string();
    let count = i64::try_from(too_many.len()).unwrap();
    assert_problem(&split_payment(&api, &owner, &funding, count, &too_many, &key).await, 400);
}

async fn balance_at(api: &Api<'_>, token: &str, account: &str, at: time::OffsetDateTime) -> Value {
    let at = caas::clock::rfc3339(at);
    let (status, body) = parts(
        &api.get("GetBalanceFunction", "/v1/accounts/{id}/balance", account, token, &[("at", &at)]).await,
    );
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn balances_as_of_a_time_and_statements_over_seeded_history() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_balances_as_of_a_time_and_statements_over_seeded_history()).await
}

async fn scenario_balances_as_of_a_time_and_statements_over_seeded_history() {
    use caas::clock::Clock;
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let email = "history@acme.example";
    let mut member = api.token("acme", email).await;
    let wallet = api.account(&member, "USD", false).await;
    let start = stack.clock.now();
    // Day d: 100 × (d + 1) in, at noon-ish; `after[d]` just after it, with the posted total.
    let mut after = Vec::new();
    let mut total = 0;
    for day in 0..12i64 {
        stack.clock.advance(time::Duration::hours(2));
        api.fund(&member, &wallet, 100 * (day + 1), "USD").await;
        total += 100 * (day + 1);
        after.push((stack.clock.now() + time::Duration::seconds(1), total));
        stack.clock.advance(time::Duration::hours(22));
        member = api.login("acme", email).await;
    }
    // Before any snapshot: from the entries alone.
    let early = balance_at(&api, &member, &wallet, after[2].0).await;
    assert_eq!(early["balance"]["posted"], after[2].1, "{early}");
    assert_eq!(
        balance_at(&api, &member, &wallet, start - time::Duration::days(1)).await["balance"]["posted"],
        0
    );

    // The verify job writes a snapshot per ended day with entries, then checks them.
    let first = verify_ledger(&stack, Some("acme")).await;
    assert!(first.ok && first.snapshots_written >= 12, "{first:?}");
    let second = verify_ledger(&stack, Some("acme")).await;
    assert!(second.ok && second.snapshots_written == 0, "written once: {second:?}");

    // Every balance as of a time: the snapshot before it plus the entries since;
    // the same three calls whatever the history's length.
    let counter = &stack.round_trips;
    let mut previous = 0;
    for (at, posted) in &after {
        counter.reset();
        let balance = balance_at(&api, &member, &wallet, *at).await;
        assert_eq!(balance["balance"]["posted"], *posted, "{balance}");
        // The first: the account with its balance shards (who may see it).
        assert_eq!(counter.operations("dynamodb"), ["Query", "Query", "Query"]);
        // Ten minutes earlier, that day's payment had not been made.
        let before = balance_at(&api, &member, &wallet, *at - time::Duration::minutes(10)).await;
        assert_eq!(before["balance"]["posted"], previous, "{before}");
        previous = *posted;
    }
    let now = balance_at(&api, &member, &wallet, stack.clock.now()).await;
    assert_eq!(now["balance"], api.balance(&member, &wallet).await, "as of now: the account's balance");

    // A statement of days 3 to 6: opening, 8 entries (a hold and its capture a day), closing; paged.
    let day = |d: i64| caas::clock::rfc3339(start + time::Duration::days(d));
    let query = |cursor: Option<String>| {
        let (api, member, wallet) = (&api, &member, &wallet);
        let (from, to) = (day(3), day(7));
        async move {
            let mut query = vec![("from", from.as_str()), ("to", to.as_str()), ("limit", "5")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let (status, body) = parts(
                &api.get("GetStatementFunction", "/v1/accounts/{id}/statement", wallet, member, &query).await,
            );
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    counter.reset();
    let page = query(None).await;
    let mut calls = counter.operations("dynamodb");
    calls.sort();
    assert_eq!(calls, ["Query", "Query", "Query", "Query", "Query", "Query"], "the same for any history");
    assert_eq!(page["opening"]["posted"], after[2].1);
    assert_eq!(page["closing"]["posted"], after[6].1);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = query(Some(cursor)).await;
    let items: Vec<&Value> =
        page["items"].as_array().unwrap().iter().chain(rest["items"].as_array().unwrap()).collect();
    assert_eq!(items.len(), 8, "{rest}");
    let moved: i64 = items
        .iter()
        .map(|e| e["credits_posted"].as_i64().unwrap() - e["debits_posted"].as_i64().unwrap())
        .sum();
    assert_eq!(page["opening"]["posted"].as_i64().unwrap() + moved, after[6].1);
    let times: Vec<&str> = items.iter().map(|e| e["created_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");

    // Bad periods and times are 400; another's account 404.
    for query in [vec![("from", day(5)), ("to", day(4))], vec![("from", "yesterday".to_owned())]] {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_problem(
            &api.get("GetStatementFunction", "/v1/accounts/{id}/statement", &wallet, &member, &query).await,
            400,
        );
    }
    assert_problem(
        &api.get("GetBalanceFunction", "/v1/accounts/{id}/balance", &wallet, &member, &[("at", "now")]).await,
        400,
    );
    // Offsets whose UTC time leaves the years 0000 to 9999 are refused, not a panic.
    for at in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
        let route = "/v1/accounts/{id}/balance";
        assert_problem(&api.get("GetBalanceFunction", route, &wallet, &member, &[("at", at)]).await, 400);
        let route = "/v1/accounts/{id}/statement";
        assert_problem(&api.get("GetStatementFunction", route, &wallet, &member, &[("to", at)]).await, 400);
    }
    let stranger = api.token("acme", "stranger@acme.example").await;
    assert_problem(
        &api.get("GetBalanceFunction", "/v1/accounts/{id}/balance", &wallet, &stranger, &[]).await,
        404,
    );
}
