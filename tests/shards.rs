//! Hot accounts against the emulator: an account created with `shards: K`
//! keeps its balance in K items. Many concurrent captures into one sharded
//! account (its balance is the sum of its shards, verify clean), the
//! overdraft rule exact (debits from shard 0, the credit shards swept into
//! it when it alone cannot cover a debit), splits into sharded payees, a
//! sharded account frozen and closed, and verify catching a tampered shard
//! and a payment whose totals disagree with its ledger legs.

use aws_sdk_dynamodb::types::AttributeValue;
use caas_tests::api::Api;
use caas_tests::*;
use serde_json::json;

/// A new account of `shards` balance shards (no overdraft); its id.
async fn hot_account(api: &Api<'_>, token: &str, shards: u32) -> String {
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "currency": "USD", "name": "merchant", "shards": shards });
    let (status, account) =
        parts(&api.post("CreateAccountFunction", "/v1/accounts", None, token, Some(&key), &body).await);
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["shards"], shards);
    account["account_id"].as_str().expect("account id").to_owned()
}

/// The stored items of an account's balance: its item and its shards, by sort key.
async fn balance_items(
    stack: &TestStack,
    account: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let output = stack
        .clients
        .dynamodb
        .query()
        .table_name(stack.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :account)")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(caas::store::ledger::account_pk("acme", account)),
        )
        .expression_attribute_values(":account", AttributeValue::S("ACCOUNT".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output.items.unwrap_or_default()
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

async fn add_to(
    stack: &TestStack,
    key: caas::store::Item,
    expression: &str,
    values: &[(&str, AttributeValue)],
) {
    let mut update = stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .set_key(Some(key))
        .update_expression(expression);
    if expression.contains("#s") {
        update = update.expression_attribute_names("#s", "status");
    }
    for (name, value) in values {
        update = update.expression_attribute_values(*name, value.clone());
    }
    update.send().await.unwrap();
}

#[tokio::test]
async fn concurrent_captures_into_a_hot_account_add_up_over_its_shards() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_concurrent_captures_into_a_hot_account_add_up_over_its_shards()).await
}

async fn scenario_concurrent_captures_into_a_hot_account_add_up_over_its_shards() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let merchant = hot_account(&api, &owner, 8).await;
    let payers = [api.account(&owner, "USD", true).await, api.account(&owner, "USD", true).await];
    let mut payments = Vec::new();
    for n in 0..32i64 {
        let payer = &payers[usize::try_from(n % 2).unwrap()];
        payments.push((payment_id(&api.authorize(&owner, payer, &merchant, 100 + n, "USD").await), n));
    }
    // The holds are pending credits, spread over the shards.
    let expected: i64 = payments.iter().map(|(_, n)| 100 + n).sum();
    assert_eq!(api.balance(&owner, &merchant).await["pending_credits"], expected);

    // One capture into a hot account costs what it costs into any account.
    let (first, _) = payments.remove(0);
    stack.round_trips.reset();
    assert_eq!(api.capture(&owner, &first, None).await.status(), 200);
    assert_eq!(stack.round_trips.operations("dynamodb"), ["BatchGetItem", "TransactWriteItems"]);
    // Every other one at once.
    let captures = payments.iter().map(|(id, _)| api.capture(&owner, id, None));
    for response in futures::future::join_all(captures).await {
        assert_eq!(response.status(), 200, "{:?}", parts(&response).1);
    }

    let balance = api.balance(&owner, &merchant).await;
    assert_eq!((balance["posted"].as_i64(), balance["pending_credits"].as_i64()), (Some(expected), Some(0)));
    let items = balance_items(&stack, &merchant).await;
    assert_eq!(items.len(), 8, "the account item and 7 credit shards");
    let summed: i64 = items.iter().map(|item| number(item, "credits_posted")).sum();
    assert_eq!(summed, expected, "the balance is the sum of the shards");
    let credited = items.iter().filter(|item| number(item, "credits_posted") > 0).count();
    assert!(credited >= 4, "credits spread over the shards: {credited} of 8 took some");
    assert!(
        items.iter().skip(1).all(|item| number(item, "debits_posted") == 0),
        "credit shards take no debit"
    );
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
    assert!(report.payments_checked >= 32, "{report:?}");

    // A split payment into two hot payees (and one plain one), captured in part.
    let fees = hot_account(&api, &owner, 4).await;
    let plain = api.account(&owner, "USD", false).await;
    let splits = json!([
        {"account_id": merchant, "amount": 700},
        {"account_id": fees, "amount": 200},
        {"account_id": plain, "amount": 100},
    ]);
    let body = json!({"amount": 1_000, "currency": "USD", "payer_account_id": payers[0], "splits": splits});
    let key = uuid::Uuid::new_v4().to_string();
    let split =
        payment_id(&api.post("CreatePaymentFunction", "/v1/payments", None, &owner, Some(&key), &body).await);
    let (status, captured) = parts(&api.capture(&owner, &split, Some(999)).await);
    assert_eq!(status, 200, "{captured}");
    assert_eq!(api.balance(&owner, &merchant).await["posted"], expected + 699);
    assert_eq!(api.balance(&owner, &fees).await["posted"], 200);
    assert_eq!(api.balance(&owner, &plain).await["posted"], 100);
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
}

#[tokio::test]
async fn the_overdraft_rule_stays_exact_on_a_hot_account() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_the_overdraft_rule_stays_exact_on_a_hot_account()).await
}

async fn scenario_the_overdraft_rule_stays_exact_on_a_hot_account() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let merchant = hot_account(&api, &owner, 8).await;
    let customer = api.account(&owner, "USD", false).await;
    let supplier = api.account(&owner, "USD", false).await;
    let mut incoming = Vec::new();
    for _ in 0..12 {
        let payer = api.account(&owner, "USD", true).await;
        let id = payment_id(&api.authorize(&owner, &payer, &merchant, 100, "USD").await);
        assert_eq!(api.capture(&owner, &id, None).await.status(), 200);
        incoming.push(id);
    }
    api.fund(&owner, &customer, 50, "USD").await;
    let items = balance_items(&stack, &merchant).await;
    assert!(number(&items[0], "available") < 1_200, "the credits are spread: shard 0 alone cannot pay 1,200");

    // The whole balance pays out: shard 0 is refused, the shards are swept
    // into it, and the payment is decided again (three more calls, only then).
    stack.round_trips.reset();
    let payout = payment_id(&api.authorize(&owner, &merchant, &supplier, 1_200, "USD").await);
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        [
            "BatchGetItem",
            "TransactWriteItems",
            "Query",
            "TransactWriteItems",
            "BatchGetItem",
            "TransactWriteItems"
        ]
    );
    let balance = api.balance(&owner, &merchant).await;
    assert_eq!((balance["available"].as_i64(), balance["posted"].as_i64()), (Some(0), Some(1_200)));
    let items = balance_items(&stack, &merchant).await;
    assert!(
        items.iter().skip(1).all(|item| number(item, "credits_posted") == 0),
        "every posted credit swept"
    );
    // Not one minor unit more: refused, after the sweep found nothing to move.
    let refused = assert_problem(&api.authorize(&owner, &merchant, &supplier, 1, "USD").await, 422);
    assert!(refused["detail"].as_str().unwrap().contains("insufficient funds"), "{refused}");
    // A refund out of it is a debit too: refused while the hold spends it all.
    assert_problem(&api.refund(&owner, &incoming[0], 100).await, 422);
    assert_eq!(api.void(&owner, &payout).await.status(), 200);

    // New credits land on the shards again; a refund needs them and gets them.
    let late = payment_id(&api.authorize(&owner, &customer, &merchant, 50, "USD").await);
    assert_eq!(api.capture(&owner, &late, None).await.status(), 200);
    let pay_all = payment_id(&api.authorize(&owner, &merchant, &supplier, 1_200, "USD").await);
    assert_eq!(api.capture(&owner, &pay_all, None).await.status(), 200);
    assert_eq!(api.balance(&owner, &merchant).await["available"], 50);
    assert_eq!(api.refund(&owner, &late, 50).await.status(), 201);
    assert_eq!(api.balance(&owner, &merchant).await["available"], 0);
    assert_problem(&api.refund(&owner, &incoming[0], 1).await, 422);

    // An overdraft on a hot account: its limit counts against the whole
    // balance, and a new limit never goes below the overdraft in use.
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({"currency": "USD", "shards": 4, "allow_overdraft": true, "overdraft_limit": 100});
    let (status, account) =
        parts(&api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &body).await);
    assert_eq!(status, 201, "{account}");
    let platform = account["account_id"].as_str().unwrap().to_owned();
    let payer = api.account(&owner, "USD", true).await;
    for _ in 0..4 {
        let id = payment_id(&api.authorize(&owner, &payer, &platform, 10, "USD").await);
        assert_eq!(api.capture(&owner, &id, None).await.status(), 200);
    }
    let spend = payment_id(&api.authorize(&owner, &platform, &supplier, 140, "USD").await);
    assert_eq!(api.capture(&owner, &spend, None).await.status(), 200);
    assert_problem(&api.authorize(&owner, &platform, &supplier, 1, "USD").await, 422);
    let tenants = stack.app("TenantsFunction");
    let limit = |limit: i64| {
        let command = json!({"action": "set_overdraft_limit", "tenant_id": "acme", "account_id": platform, "overdraft_limit": limit});
        tenants::handler(
            &tenants,
            lambda_runtime::LambdaEvent::new(command, lambda_runtime::Context::default()),
        )
    };
    let id = payment_id(&api.authorize(&owner, &payer, &platform, 30, "USD").await);
    assert_eq!(api.capture(&owner, &id, None).await.status(), 200);
    // The balance is -70 (the 30 on whichever shard took it): a limit of 70 holds, 69 does not.
    assert!(limit(69).await.is_err(), "below the overdraft in use");
    assert!(limit(70).await.is_ok());
    assert_eq!(api.balance(&owner, &platform).await["available"], -70);
    assert_problem(&api.authorize(&owner, &platform, &supplier, 1, "USD").await, 422);
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
}

#[tokio::test]
async fn a_hot_account_freezes_and_closes_with_all_its_shards() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_a_hot_account_freezes_and_closes_with_all_its_shards()).await
}

async fn scenario_a_hot_account_freezes_and_closes_with_all_its_shards() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let merchant = hot_account(&api, &owner, 4).await;
    let payer = api.account(&owner, "USD", true).await;
    let supplier = api.account(&owner, "USD", false).await;
    for _ in 0..6 {
        let id = payment_id(&api.authorize(&owner, &payer, &merchant, 10, "USD").await);
        assert_eq!(api.capture(&owner, &id, None).await.status(), 200);
    }
    let (status, frozen) = parts(&api.patch_account(&owner, &merchant, json!({"status": "frozen"})).await);
    assert_eq!(
        (status, frozen["status"].as_str(), frozen["shards"].as_u64()),
        (200, Some("frozen"), Some(4))
    );
    let items = balance_items(&stack, &merchant).await;
    assert!(items.iter().all(|item| item["status"].as_s().unwrap() == "frozen"), "every shard is frozen");
    // Frozen: credits land (on any shard), debits are refused.
    let id = payment_id(&api.authorize(&owner, &payer, &merchant, 10, "USD").await);
    assert_eq!(api.capture(&owner, &id, None).await.status(), 200);
    assert_problem(&api.authorize(&owner, &merchant, &supplier, 10, "USD").await, 409);
    // Not settled: refused.
    assert_problem(&api.patch_account(&owner, &merchant, json!({"status": "closed"})).await, 409);
    assert_eq!(api.patch_account(&owner, &merchant, json!({"status": "active"})).await.status(), 200);
    let out = payment_id(&api.authorize(&owner, &merchant, &supplier, 70, "USD").await);
    assert_eq!(api.capture(&owner, &out, None).await.status(), 200);
    let (status, closed) = parts(&api.patch_account(&owner, &merchant, json!({"status": "closed"})).await);
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    // Closed: no credit lands on any of its shards.
    for _ in 0..4 {
        let refused = assert_problem(&api.authorize(&owner, &payer, &merchant, 10, "USD").await, 409);
        assert!(refused["detail"].as_str().unwrap().contains("payee account is closed"), "{refused}");
    }
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");
}

#[tokio::test]
async fn verify_catches_a_tampered_shard_and_a_payment_that_disagrees_with_its_legs() {
    // Boxed: the whole scenario's future lives on the heap, not the test thread's stack.
    Box::pin(scenario_verify_catches_a_tampered_shard_and_a_payment_that_disagrees_with_its_legs()).await
}

async fn scenario_verify_catches_a_tampered_shard_and_a_payment_that_disagrees_with_its_legs() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    let merchant = hot_account(&api, &owner, 8).await;
    let fees = api.account(&owner, "USD", false).await;
    let payer = api.account(&owner, "USD", true).await;
    let splits = json!([{"account_id": merchant, "amount": 900}, {"account_id": fees, "amount": 100}]);
    let body = json!({"amount": 1_000, "currency": "USD", "payer_account_id": payer, "splits": splits});
    let key = uuid::Uuid::new_v4().to_string();
    let split =
        payment_id(&api.post("CreatePaymentFunction", "/v1/payments", None, &owner, Some(&key), &body).await);
    assert_eq!(api.capture(&owner, &split, Some(500)).await.status(), 200);
    let plain = payment_id(&api.authorize(&owner, &payer, &merchant, 300, "USD").await);
    assert_eq!(api.capture(&owner, &plain, None).await.status(), 200);
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.ok, "{report:?}");

    // A credit shard's total changed behind the ledger's back: the shards no
    // longer add up to the entries.
    let n = |v: i64| AttributeValue::N(v.to_string());
    let shard = caas::store::ledger::shard_key("acme", &merchant, 3);
    add_to(&stack, shard.clone(), "ADD credits_posted :x, available :x", &[(":x", n(5))]).await;
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(!report.ok);
    let drifted: Vec<&str> = report.drift.iter().map(|d| d.account_id.as_str()).collect();
    assert_eq!(drifted, [merchant.as_str()]);
    assert_eq!(report.drift[0].stored.credits_posted - report.drift[0].replayed.credits_posted, 5);
    let shard = caas::store::ledger::shard_key("acme", &merchant, 3);
    add_to(&stack, shard.clone(), "ADD credits_posted :x, available :x", &[(":x", n(-5))]).await;
    assert!(verify_ledger(&stack, Some("acme")).await.ok, "restored");
    // A shard in another state than its account is wrong even where the sums agree.
    let frozen = AttributeValue::S("frozen".into());
    add_to(&stack, shard.clone(), "SET #s = :s", &[(":s", frozen)]).await;
    let report = verify_ledger(&stack, Some("acme")).await;
    assert!(report.drift.is_empty() && report.shard_mismatch == [merchant.clone()], "{report:?}");
    assert!(!report.ok);
    add_to(&stack, shard, "SET #s = :s", &[(":s", AttributeValue::S("active".into()))]).await;
    assert!(verify_ledger(&stack, Some("acme")).await.ok, "restored");

    // A payment whose totals disagree with its ledger legs: its captured
    // amount, then one leg's captured part.
    let payment_key = caas::store::payments::payment_key("acme", &plain);
    add_to(&stack, payment_key.clone(), "ADD captured_amount :x", &[(":x", n(1))]).await;
    let report = verify_ledger(&stack, Some("acme")).await;
    assert_eq!(report.payment_mismatch, [plain.as_str()], "{report:?}");
    assert!(!report.ok && report.drift.is_empty(), "the accounts still agree with their entries");
    add_to(&stack, payment_key, "ADD captured_amount :x", &[(":x", n(-1))]).await;
    let split_key = caas::store::payments::payment_key("acme", &split);
    add_to(&stack, split_key.clone(), "SET splits[1].captured_amount = :x", &[(":x", n(51))]).await;
    let report = verify_ledger(&stack, Some("acme")).await;
    assert_eq!(report.payment_mismatch, [split.as_str()], "{report:?}");
    add_to(&stack, split_key, "SET splits[1].captured_amount = :x", &[(":x", n(50))]).await;
    assert!(verify_ledger(&stack, Some("acme")).await.ok);
}

#[tokio::test]
async fn the_shard_count_is_bounded() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.treasurer("acme").await;
    for shards in [json!(0), json!(33), json!(-1), json!(1.5), json!("8")] {
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({ "currency": "USD", "shards": shards });
        let response =
            api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &body).await;
        let problem = assert_problem(&response, 400);
        assert_eq!(problem["field"], "shards", "{shards}: {problem}");
    }
    // An integer as JSON Schema reads one (openapi.yaml's `integer`).
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "currency": "USD", "shards": 2.0 });
    let response = api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &body).await;
    assert_eq!(parts(&response).1["shards"], 2, "2.0 is the integer 2");
    let most = hot_account(&api, &owner, caas::ledger::MAX_SHARDS).await;
    assert_eq!(balance_items(&stack, &most).await.len(), 32);
    let one = api.account(&owner, "USD", false).await;
    let (_, view) = parts(&api.get("GetAccountFunction", "/v1/accounts/{id}", &one, &owner, &[]).await);
    assert_eq!(view["shards"], 1);
}
