//! Payments and the ledger against the emulator: two-phase payments, balances,
//! idempotency under concurrency, round trips, tenant isolation, bad input,
//! and a property test that the ledger always balances.

use caas::clock::Clock;
use caas_tests::api::{Api, api_event};
use caas_tests::*;
use serde_json::{Value, json};

fn status_and_body(response: &lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    parts(response)
}

#[tokio::test]
async fn authorize_capture_refund_moves_money_exactly() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let alice = api.account(&token, "USD", false).await;
    let bob = api.account(&token, "USD", false).await;
    api.fund(&token, &alice, 10_000, "USD").await;
    assert_eq!(
        api.balance(&token, &alice).await,
        json!({"posted": 10_000, "pending_debits": 0, "pending_credits": 0, "available": 10_000})
    );

    let (status, payment) = status_and_body(&api.authorize(&token, &alice, &bob, 7_000, "USD").await);
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "authorized");
    let id = payment["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.balance(&token, &alice).await,
        json!({"posted": 10_000, "pending_debits": 7_000, "pending_credits": 0, "available": 3_000})
    );
    assert_eq!(
        api.balance(&token, &bob).await,
        json!({"posted": 0, "pending_debits": 0, "pending_credits": 7_000, "available": 0})
    );

    // Partial capture releases the rest of the hold.
    let (status, captured) = status_and_body(&api.capture(&token, &id, Some(5_000)).await);
    assert_eq!(status, 200, "{captured}");
    assert_eq!(
        (captured["status"].as_str(), captured["captured_amount"].as_i64()),
        (Some("captured"), Some(5_000))
    );
    assert_eq!(
        api.balance(&token, &alice).await,
        json!({"posted": 5_000, "pending_debits": 0, "pending_credits": 0, "available": 5_000})
    );
    assert_eq!(
        api.balance(&token, &bob).await,
        json!({"posted": 5_000, "pending_debits": 0, "pending_credits": 0, "available": 5_000})
    );

    let (status, refunded) = status_and_body(&api.refund(&token, &id, 2_000).await);
    assert_eq!(status, 201, "{refunded}");
    assert_eq!(refunded["status"], "partially_refunded");
    let (status, problem) = status_and_body(&api.refund(&token, &id, 3_001).await);
    assert_eq!(status, 422, "refund beyond captured: {problem}");
    assert_eq!(status_and_body(&api.refund(&token, &id, 3_000).await).1["status"], "refunded");
    assert_eq!(status_and_body(&api.refund(&token, &id, 1).await).0, 409, "nothing left to refund");
    assert_eq!(api.balance(&token, &alice).await["posted"], 10_000);
    assert_eq!(api.balance(&token, &bob).await["posted"], 0);

    let (status, detail) =
        status_and_body(&api.get("GetPaymentFunction", "/v1/payments/{id}", &id, &token, &[]).await);
    assert_eq!(status, 200);
    let kinds: Vec<&str> =
        detail["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["payment.authorized", "payment.captured", "payment.refunded", "payment.refunded"]);
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"].is_string() && e["correlation_id"].is_string())
    );

    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.accounts_checked, 3);
    assert!(report.currency_totals.iter().all(|t| t.posted_sum == 0));
}

#[tokio::test]
async fn holds_respect_the_overdraft_rule_and_voids_release_them() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "EUR", false).await, api.account(&token, "EUR", false).await);

    let (status, problem) = status_and_body(&api.authorize(&token, &alice, &bob, 1, "EUR").await);
    assert_eq!(status, 422, "no funds, no authorization: {problem}");
    let (_, page) = status_and_body(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &alice, &token, &[]).await,
    );
    assert_eq!(page["items"], json!([]), "a refused payment leaves nothing behind");

    api.fund(&token, &alice, 500, "EUR").await;
    let (_, first) = status_and_body(&api.authorize(&token, &alice, &bob, 400, "EUR").await);
    assert_eq!(
        status_and_body(&api.authorize(&token, &alice, &bob, 101, "EUR").await).0,
        422,
        "the hold counts"
    );
    let first = first["payment_id"].as_str().unwrap().to_owned();
    let (status, voided) = status_and_body(&api.void(&token, &first).await);
    assert_eq!((status, voided["status"].as_str()), (200, Some("voided")));
    assert_eq!(api.balance(&token, &alice).await["available"], 500);
    assert_eq!(status_and_body(&api.capture(&token, &first, None).await).0, 409, "voided cannot be captured");
    assert_eq!(status_and_body(&api.authorize(&token, &alice, &bob, 500, "EUR").await).0, 201);
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_mismatches_and_are_required() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "JPY", false).await, api.account(&token, "JPY", false).await);
    api.fund(&token, &alice, 1_000, "JPY").await;
    let body = json!({"amount": 300, "currency": "JPY", "payer_account_id": alice, "payee_account_id": bob});

    let first = api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &body).await;
    let (status, created) = status_and_body(&first);
    assert_eq!(status, 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    let again = api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &body).await;
    assert_eq!(status_and_body(&again), (201, created.clone()), "the original status and body");
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(api.balance(&token, &alice).await["available"], 700, "held once");

    let reordered =
        json!({"payee_account_id": bob, "payer_account_id": alice, "currency": "JPY", "amount": 300});
    assert_eq!(
        status_and_body(
            &api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &reordered).await
        )
        .0,
        201
    );
    let different =
        json!({"amount": 301, "currency": "JPY", "payer_account_id": alice, "payee_account_id": bob});
    let mismatch =
        api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &different).await;
    assert_problem(&mismatch, 422);
    let missing = api.post("CreatePaymentFunction", "/v1/payments", None, &token, None, &body).await;
    assert_eq!(assert_problem(&missing, 400)["field"], "Idempotency-Key");

    // Keys are scoped per operation: the same key on capture is a new request.
    let id = created["payment_id"].as_str().unwrap();
    let capture = api
        .post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(id),
            &token,
            Some("key-1"),
            &json!({}),
        )
        .await;
    assert_eq!(capture.status(), 200);
    assert_eq!(header(&capture, "idempotent-replayed"), None);

    // Kept at least 24 h, then usable again.
    stack.clock.advance(time::Duration::hours(23));
    let token = api.token("acme", "ops@example.com").await; // the old one expired
    let replay = api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &body).await;
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    stack.clock.advance(time::Duration::hours(2));
    let token = api.token("acme", "ops@example.com").await;
    let fresh =
        api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some("key-1"), &different).await;
    assert_eq!(fresh.status(), 201);
    assert_eq!(header(&fresh, "idempotent-replayed"), None);
}

#[tokio::test]
async fn an_abandoned_in_flight_key_blocks_only_until_it_expires() {
    use caas::store::idempotency::{IdempotencyRecord, RecordStatus, complete};
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &alice, 100, "USD").await;
    let (_, payment) = status_and_body(&api.authorize(&token, &alice, &bob, 100, "USD").await);
    let id = payment["payment_id"].as_str().unwrap();

    // An invocation reserved the key and died (Powertools' in-progress record).
    let now = stack.clock.now();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let record = IdempotencyRecord {
        tenant_id: "acme".into(),
        principal: format!("user:{}", caas_tests::api::claims(&token)["sub"].as_str().unwrap()),
        operation: "capture-payment".into(),
        idempotency_key: "reserved".into(),
        status: RecordStatus::InProgress,
        fingerprint: caas::idempotency::fingerprint("capture-payment", id, &json!({})),
        response_status: 0,
        response_body: String::new(),
        created_at: "seed".into(),
        expires_at: now.unix_timestamp() + 86_400,
        in_progress_until_ms: Some(now_ms + 5_000),
    };
    let table = stack.table();
    let tenant = caas::tenant::TenantId::parse("acme").unwrap();
    let seed = caas::outbox::OutboxEvent::new(&tenant, "test", "seed", "test.seeded", now, "seed", json!({}));
    caas::store::tx::Tx::<caas::store::labels::PaymentLabel>::new(&table, &seed)
        .unwrap()
        .push(complete(&table, &record, now.unix_timestamp(), now_ms).unwrap())
        .commit(&stack.clients.dynamodb)
        .await
        .unwrap();

    let blocked = api
        .post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(id),
            &token,
            Some("reserved"),
            &json!({}),
        )
        .await;
    assert_problem(&blocked, 409);
    assert!(
        header(&blocked, "retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=6).contains(&s)))
    );
    stack.clock.advance(time::Duration::seconds(6));
    let taken_over = api
        .post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(id),
            &token,
            Some("reserved"),
            &json!({}),
        )
        .await;
    assert_eq!(status_and_body(&taken_over).0, 200, "the key is usable once the reservation expired");
}

#[tokio::test]
async fn fifty_identical_concurrent_captures_move_money_once() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &alice, 1_000, "USD").await;
    let (_, payment) = status_and_body(&api.authorize(&token, &alice, &bob, 1_000, "USD").await);
    let id = payment["payment_id"].as_str().unwrap();

    let empty = json!({});
    let responses = futures::future::join_all((0..50).map(|_| {
        api.post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(id),
            &token,
            Some("capture-once"),
            &empty,
        )
    }))
    .await;
    let fresh =
        responses.iter().filter(|r| r.status() == 200 && header(r, "idempotent-replayed").is_none()).count();
    let replays = responses
        .iter()
        .filter(|r| r.status() == 200 && header(r, "idempotent-replayed") == Some("true"))
        .count();
    let in_flight = responses.iter().filter(|r| r.status() == 409).count();
    assert_eq!(fresh, 1, "exactly one capture");
    assert_eq!(fresh + replays + in_flight, 50, "the rest are replays or 409s");
    let bodies: std::collections::HashSet<String> =
        responses.iter().filter(|r| r.status() == 200).map(|r| status_and_body(r).1.to_string()).collect();
    assert_eq!(bodies.len(), 1, "every replay is the original body");

    let (_, page) = status_and_body(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &bob, &token, &[]).await,
    );
    let captures = page["items"].as_array().unwrap().iter().filter(|e| e["movement"] == "capture").count();
    assert_eq!(captures, 1, "one ledger transaction");
    assert_eq!(api.balance(&token, &bob).await["posted"], 1_000, "moved once");
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

#[tokio::test]
async fn fifty_concurrent_captures_with_different_keys_succeed_once() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &alice, 1_000, "USD").await;
    let (_, payment) = status_and_body(&api.authorize(&token, &alice, &bob, 600, "USD").await);
    let id = payment["payment_id"].as_str().unwrap();
    let responses = futures::future::join_all((0..50).map(|_| api.capture(&token, id, None))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 49, "{statuses:?}");
    assert_eq!(api.balance(&token, &bob).await["posted"], 600);
    assert_eq!(
        api.balance(&token, &alice).await,
        json!({"posted": 400, "pending_debits": 0, "pending_credits": 0, "available": 400})
    );
}

/// Every idempotent command of the payments API, made by `caller` on the
/// money of `token`'s user: fresh at most two DynamoDB round trips, the last
/// the transaction; a replay exactly the one read. `account` is the body of
/// the account creation.
async fn assert_round_trips(stack: &TestStack, api: &Api<'_>, token: &str, caller: &str, account: Value) {
    let (alice, bob) = (api.account(token, "USD", false).await, api.account(token, "USD", false).await);
    api.fund(token, &alice, 1_000, "USD").await;
    let (_, p1) = status_and_body(&api.authorize(token, &alice, &bob, 300, "USD").await);
    let (_, p2) = status_and_body(&api.authorize(token, &alice, &bob, 300, "USD").await);
    let (p1, p2) = (p1["payment_id"].as_str().unwrap(), p2["payment_id"].as_str().unwrap());
    let counter = &stack.round_trips;

    let create =
        json!({"amount": 100, "currency": "USD", "payer_account_id": alice, "payee_account_id": bob});
    let cases: Vec<(&str, &str, Option<&str>, Value)> = vec![
        ("CreateAccountFunction", "/v1/accounts", None, account),
        ("CreatePaymentFunction", "/v1/payments", None, create),
        ("CapturePaymentFunction", "/v1/payments/{id}/capture", Some(p1), json!({"amount": 200})),
        ("VoidPaymentFunction", "/v1/payments/{id}/void", Some(p2), json!({})),
        ("RefundPaymentFunction", "/v1/payments/{id}/refunds", Some(p1), json!({"amount": 50})),
    ];
    for (function, route, id, body) in cases {
        let key = uuid::Uuid::new_v4().to_string();
        counter.reset();
        let fresh = api.post(function, route, id, caller, Some(&key), &body).await;
        assert!(fresh.status().is_success(), "{function}: {:?}", status_and_body(&fresh));
        let fresh_calls = counter.operations("dynamodb");
        assert!(fresh_calls.len() <= 2, "{function} fresh: {fresh_calls:?}");
        assert_eq!(fresh_calls.last().map(String::as_str), Some("TransactWriteItems"), "{function}");
        counter.reset();
        let replay = api.post(function, route, id, caller, Some(&key), &body).await;
        assert_eq!(header(&replay, "idempotent-replayed"), Some("true"), "{function}");
        assert_eq!(counter.operations("dynamodb"), ["BatchGetItem"], "{function} replay");
    }
}

#[tokio::test]
async fn round_trips_fresh_at_most_two_replay_exactly_one() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    assert_round_trips(&stack, &api, &token, &token, json!({"currency": "USD"})).await;
}

/// The checks the access model adds ride in the same round trips: an owner
/// acting on a member's money (their role re-checked on their directory
/// entry), and an account for a named user (its entry checked).
#[tokio::test]
async fn round_trips_hold_when_a_role_or_a_named_owner_is_checked() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let owner = api.treasurer("acme").await;
    let user = caas_tests::api::claims(&token)["sub"].clone();
    let account = json!({"currency": "USD", "owner": {"type": "user", "id": user}});
    assert_round_trips(&stack, &api, &token, &owner, account).await;
}

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_others_money() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let acme = api.token("acme", "ops@example.com").await;
    let globex = api.token("globex", "ops@example.com").await;
    let (alice, bob) = (api.account(&acme, "USD", false).await, api.account(&acme, "USD", false).await);
    api.fund(&acme, &alice, 500, "USD").await;
    let (_, payment) = status_and_body(&api.authorize(&acme, &alice, &bob, 200, "USD").await);
    let id = payment["payment_id"].as_str().unwrap();

    assert_problem(&api.get("GetPaymentFunction", "/v1/payments/{id}", id, &globex, &[]).await, 404);
    assert_problem(&api.get("GetAccountFunction", "/v1/accounts/{id}", &alice, &globex, &[]).await, 404);
    assert_problem(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &alice, &globex, &[]).await,
        404,
    );
    assert_problem(&api.capture(&globex, id, None).await, 404);
    assert_problem(&api.void(&globex, id).await, 404);
    let globex_wallet = api.account(&globex, "USD", false).await;
    assert_problem(&api.authorize(&globex, &alice, &globex_wallet, 100, "USD").await, 404);
    // Nothing moved in acme.
    assert_eq!(
        status_and_body(&api.get("GetPaymentFunction", "/v1/payments/{id}", id, &acme, &[]).await).1["status"],
        "authorized"
    );
    assert_eq!(api.balance(&acme, &alice).await["available"], 300);
}

#[tokio::test]
async fn bad_input_gets_clear_problems_never_500() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (usd, other) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    let eur = api.account(&token, "EUR", false).await;
    api.fund(&token, &usd, 1_000, "USD").await;

    let payment = |amount: Value, currency: &str, payee: &str| json!({"amount": amount, "currency": currency, "payer_account_id": usd, "payee_account_id": payee});
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (payment(json!(-5), "USD", &other), 400, Some("amount")),
        (payment(json!(0), "USD", &other), 400, Some("amount")),
        (payment(json!(10.5), "USD", &other), 400, Some("amount")),
        (payment(json!(1e30), "USD", &other), 400, Some("amount")),
        (payment(json!(99_999_999_999_999_999u64), "USD", &other), 400, Some("amount")),
        (payment(json!("100"), "USD", &other), 400, Some("amount")),
        (payment(json!(100), "usd", &other), 400, Some("currency")),
        (payment(json!(100), "XYZ", &other), 400, Some("currency")),
        (payment(json!(100), "USD", "not-an-id"), 400, Some("payee_account_id")),
        (payment(json!(100), "USD", &usd), 400, Some("payee_account_id")),
        (payment(json!(100), "USD", &caas::ids::new_id()), 404, None),
        (payment(json!(100), "USD", &eur), 422, None),
        (json!({"amount": 100, "currency": "USD", "payer_account_id": usd}), 400, Some("payee_account_id")),
        (
            json!({"amount": 1, "currency": "USD", "payer_account_id": usd, "payee_account_id": other, "tenant_id": "globex"}),
            400,
            Some("tenant_id"),
        ),
    ];
    for (body, status, field) in cases {
        let key = uuid::Uuid::new_v4().to_string();
        let response =
            api.post("CreatePaymentFunction", "/v1/payments", None, &token, Some(&key), &body).await;
        let problem = assert_problem(&response, status);
        assert_eq!(problem["field"].as_str(), field, "{body}");
    }

    let bearer = format!("Bearer {token}");
    let malformed = api_event(
        "POST",
        "/v1/payments",
        &[],
        &[],
        &[("authorization", &bearer), ("idempotency-key", "k")],
        Some("{\"amount\":"),
    );
    assert_problem(&api.call("CreatePaymentFunction", malformed).await, 400);
    let no_token = api_event("POST", "/v1/payments", &[], &[], &[("idempotency-key", "k")], Some("{}"));
    assert_problem(&api.call("CreatePaymentFunction", no_token).await, 401);
    let bad_token = api_event(
        "GET",
        "/v1/accounts/{id}",
        &[("id", &usd)],
        &[],
        &[("authorization", "Bearer abc.def.ghi")],
        None,
    );
    assert_problem(&api.call("GetAccountFunction", bad_token).await, 401);
    assert_problem(
        &api.get("GetPaymentFunction", "/v1/payments/{id}", &caas::ids::new_id(), &token, &[]).await,
        404,
    );
    assert_problem(&api.get("GetPaymentFunction", "/v1/payments/{id}", "../../etc", &token, &[]).await, 404);
    assert_problem(&api.capture(&token, &caas::ids::new_id(), None).await, 404);
    let key = uuid::Uuid::new_v4().to_string();
    let capture_float = api
        .post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(&caas::ids::new_id()),
            &token,
            Some(&key),
            &json!({"amount": 1.5}),
        )
        .await;
    assert_eq!(assert_problem(&capture_float, 400)["field"], "amount");
    let key = uuid::Uuid::new_v4().to_string();
    assert_problem(
        &api.post(
            "CreateAccountFunction",
            "/v1/accounts",
            None,
            &token,
            Some(&key),
            &json!({"currency": "BTC"}),
        )
        .await,
        400,
    );
    for query in [[("limit", "0")], [("limit", "1000")], [("limit", "ten")], [("cursor", "!!")]] {
        assert_problem(
            &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &usd, &token, &query)
                .await,
            400,
        );
    }
    let long_key = "k".repeat(300);
    assert_problem(
        &api.post(
            "CreateAccountFunction",
            "/v1/accounts",
            None,
            &token,
            Some(&long_key),
            &json!({"currency": "USD"}),
        )
        .await,
        400,
    );
}

#[tokio::test]
async fn transactions_list_newest_first_with_an_opaque_cursor() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &alice, 1_000, "USD").await;
    for amount in [10, 20, 30] {
        api.authorize(&token, &alice, &bob, amount, "USD").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let (status, page) = status_and_body(
            &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &alice, &token, &query)
                .await,
        );
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|e| e["tx_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "fund = authorize + capture, then three holds");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
}

#[tokio::test]
async fn verify_reports_exactly_the_tampered_account() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (alice, bob) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &alice, 900, "USD").await;
    let (_, payment) = status_and_body(&api.authorize(&token, &alice, &bob, 400, "USD").await);
    api.capture(&token, payment["payment_id"].as_str().unwrap(), None).await;
    assert!(verify_ledger(&stack, None).await.ok);

    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(caas::store::ledger::account_key("acme", &bob)))
        .update_expression("ADD credits_posted :x")
        .expression_attribute_values(":x", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let report = verify_ledger(&stack, None).await;
    assert!(!report.ok);
    let drifted: Vec<&str> = report.drift.iter().map(|d| d.account_id.as_str()).collect();
    assert_eq!(drifted, [bob.as_str()]);
    assert_eq!(report.drift[0].stored.credits_posted - report.drift[0].replayed.credits_posted, 1);
    assert!(
        report.currency_totals.iter().any(|t| t.posted_sum == 1),
        "the sum is off by the tampered amount"
    );
    assert!(report.spendable_mismatch.is_empty(), "spendable moved with available");

    // What a debit may take is checked against the totals too.
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(caas::store::ledger::account_key("acme", &alice)))
        .update_expression("ADD spendable :x")
        .expression_attribute_values(":x", aws_sdk_dynamodb::types::AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    let report = verify_ledger(&stack, None).await;
    assert_eq!(report.spendable_mismatch, [alice]);
}

/// Sets stored totals of an account directly (what years of traffic, or an
/// update written before totals were bounded, would leave).
async fn set_totals(stack: &TestStack, account: &str, totals: &[(&str, &str)]) {
    let sets: Vec<String> = totals.iter().map(|(name, _)| format!("{name} = :{name}")).collect();
    let mut update = stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(caas::store::ledger::account_key("acme", account)))
        .update_expression(format!("SET {}", sets.join(", ")));
    for (name, value) in totals {
        update = update.expression_attribute_values(
            format!(":{name}"),
            aws_sdk_dynamodb::types::AttributeValue::N((*value).into()),
        );
    }
    update.send().await.unwrap();
}

/// No total can be taken past i64: a movement that would is refused with a
/// 422 and moves nothing (today's bound), where the unbounded ADD used to store
/// it and make every later read of the account a 500.
#[tokio::test]
async fn no_account_total_can_leave_i64() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (payer, payee) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &payer, 10_000, "USD").await;
    let near = (i64::MAX - 1_000).to_string();
    set_totals(&stack, &payee, &[("credits_posted", &near), ("available", &near)]).await;

    let (status, payment) = status_and_body(&api.authorize(&token, &payer, &payee, 5_000, "USD").await);
    assert_eq!(status, 201, "{payment}");
    let id = payment["payment_id"].as_str().unwrap();
    let refused = assert_problem(&api.capture(&token, id, None).await, 422);
    assert!(refused["detail"].as_str().unwrap().contains("payee account's totals would exceed"), "{refused}");
    let (_, unchanged) =
        status_and_body(&api.get("GetPaymentFunction", "/v1/payments/{id}", id, &token, &[]).await);
    assert_eq!(unchanged["status"], "authorized", "nothing moved: {unchanged}");
    assert_eq!(api.balance(&token, &payee).await["available"], i64::MAX - 1_000);
    // Within the bound it still goes through.
    assert_eq!(status_and_body(&api.capture(&token, id, Some(1_000)).await).0, 200);
    assert_eq!(api.balance(&token, &payee).await["available"], i64::MAX);

    // Pending totals are bounded as well (the authorize's credit to the payee).
    set_totals(&stack, &payee, &[("credits_pending", &(i64::MAX - 10).to_string())]).await;
    let refused = assert_problem(&api.authorize(&token, &payer, &payee, 11, "USD").await, 422);
    assert!(refused["detail"].as_str().unwrap().contains("payee account's totals"), "{refused}");
    // And an overdraft is still told as one.
    let broke = api.account(&token, "USD", false).await;
    let refused = assert_problem(&api.authorize(&token, &broke, &payer, 1, "USD").await, 422);
    assert!(refused["detail"].as_str().unwrap().contains("insufficient funds"), "{refused}");
}

/// A total already stored beyond i64 (before the bound) is answered, not a 500:
/// 409 on reads and movements, and the verify job reports the account instead
/// of failing for every tenant.
#[tokio::test]
async fn a_total_stored_beyond_i64_is_reported_not_a_500() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ops@example.com").await;
    let (payer, payee) = (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
    api.fund(&token, &payer, 10_000, "USD").await;
    set_totals(
        &stack,
        &payee,
        &[("credits_posted", "9223372036854775808"), ("available", "9223372036854775808")],
    )
    .await;

    let read =
        assert_problem(&api.get("GetAccountFunction", "/v1/accounts/{id}", &payee, &token, &[]).await, 409);
    assert!(read["detail"].as_str().unwrap().contains("beyond what the ledger holds"), "{read}");
    assert_problem(
        &api.get("ListTransactionsFunction", "/v1/accounts/{id}/transactions", &payee, &token, &[]).await,
        409,
    );
    assert_problem(&api.authorize(&token, &payer, &payee, 100, "USD").await, 409);

    let report = verify_ledger(&stack, None).await;
    assert!(!report.ok);
    let flagged: Vec<(&str, &str)> =
        report.out_of_range.iter().map(|o| (o.account_id.as_str(), o.attribute.as_str())).collect();
    assert_eq!(flagged, [(payee.as_str(), "credits_posted")]);
    assert!(report.drift.is_empty(), "{:?}", report.drift);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Authorize { payer: usize, payee: usize, amount: i64 },
        Capture { payment: usize, amount: Option<i64> },
        Void { payment: usize },
        Refund { payment: usize, amount: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..3usize, 1..400i64).prop_map(|(payer, payee, amount)| Op::Authorize {
                payer,
                payee,
                amount
            }),
            (0..8usize, proptest::option::of(1..400i64))
                .prop_map(|(payment, amount)| Op::Capture { payment, amount }),
            (0..8usize).prop_map(|payment| Op::Void { payment }),
            (0..8usize, 1..300i64).prop_map(|(payment, amount)| Op::Refund { payment, amount }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, max_shrink_iters: 0, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_ledger_always_balances(ops in proptest::collection::vec(op(), 1..10)) {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(run(ops));
        }
    }

    async fn run(ops: Vec<Op>) {
        let stack = TestStack::new().await;
        let api = Api::new(&stack);
        let token = api.token("acme", "ops@example.com").await;
        let mut accounts = Vec::new();
        for _ in 0..3 {
            accounts.push(api.account(&token, "USD", false).await);
        }
        api.fund(&token, &accounts[0], 500, "USD").await;
        api.fund(&token, &accounts[1], 200, "USD").await;
        let mut payments: Vec<String> = Vec::new();
        for op in ops {
            let response = match &op {
                Op::Authorize { payer, payee, amount } if payer != payee => {
                    let response =
                        api.authorize(&token, &accounts[*payer], &accounts[*payee], *amount, "USD").await;
                    if response.status() == 201 {
                        payments.push(parts(&response).1["payment_id"].as_str().unwrap().to_owned());
                    }
                    response
                }
                Op::Authorize { .. } => continue,
                Op::Capture { payment, amount } => match payments.get(*payment) {
                    Some(id) => api.capture(&token, id, *amount).await,
                    None => continue,
                },
                Op::Void { payment } => match payments.get(*payment) {
                    Some(id) => api.void(&token, id).await,
                    None => continue,
                },
                Op::Refund { payment, amount } => match payments.get(*payment) {
                    Some(id) => api.refund(&token, id, *amount).await,
                    None => continue,
                },
            };
            let status = response.status().as_u16();
            assert!(matches!(status, 200 | 201 | 409 | 422), "{op:?}: {:?}", parts(&response));
            for account in &accounts {
                let balance = api.balance(&token, account).await;
                assert!(
                    balance["available"].as_i64().unwrap() >= 0,
                    "{op:?}: overdraft on {account}: {balance}"
                );
            }
            let report = verify_ledger(&stack, Some("acme")).await;
            assert!(report.ok, "after {op:?}: {report:?}");
            assert!(report.currency_totals.iter().all(|t| t.posted_sum == 0 && t.pending_difference == 0));
        }
    }
}
