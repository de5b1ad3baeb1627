//! The attacks the access model closes, each tried through the real handlers
//! and refused, with nothing moved: a member reading the audit trail, paying
//! themselves from another user's account, giving themselves unlimited
//! credit, refunding their own payment as the payer, and replaying another
//! caller's idempotency key; and a demoted admin's still-valid token.

use caas::auth::Role;
use caas_tests::api::{Api, api_event, claims};
use caas_tests::triggers::{QueueTrigger, StreamTrigger, lambda_event};
use caas_tests::*;
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn get(api: &Api<'_>, function: &str, route: &str, token: &str) -> (u16, Value) {
    let auth = bearer(token);
    let request = api_event("GET", route, &[], &[], &[("authorization", auth.as_str())], None);
    parts(&Box::pin(api.call(function, request)).await)
}

/// A member of `acme` with a funded account of theirs: (token, account).
async fn victim(api: &Api<'_>, amount: i64) -> (String, String) {
    let token = api.token("acme", "victim@acme.example").await;
    let savings = api.account(&token, "USD", false).await;
    api.fund(&token, &savings, amount, "USD").await;
    (token, savings)
}

async fn payment_id(response: lambda_http::Response<lambda_http::Body>) -> String {
    let (status, body) = parts(&response);
    assert_eq!(status, 201, "{body}");
    body["payment_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_member_cannot_read_the_audit_trail_and_it_holds_no_email() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let victim = api.token("acme", "victim@acme.example").await;
    api.account(&victim, "USD", false).await;
    let member = api.token("acme", "mallory@acme.example").await;
    for (function, route) in
        [("ListAuditFunction", "/v1/audit/events"), ("VerifyAuditFunction", "/v1/audit/verify")]
    {
        let (status, problem) = get(&api, function, route, &member).await;
        assert_eq!(status, 403, "{route}: {problem}");
    }

    // Those who may read it find actors by id, never an email.
    let auditor = api.invited("acme", "auditor@acme.example", Role::Auditor).await;
    let stream = StreamTrigger::new(&stack, "OutboxDrainFunction");
    let drain = stack.app("OutboxDrainFunction");
    let published = outbox_drain::handler(&drain, StreamTrigger::event(stream.poll().await)).await.unwrap();
    assert!(published.batch_item_failures.is_empty());
    let queue = QueueTrigger::new(&stack, "EventsQueue");
    let writer = stack.app("AuditWriterFunction");
    loop {
        let batch = queue.receive(10).await;
        if batch.records.is_empty() {
            break;
        }
        let response = audit_writer::handler(&writer, lambda_event(batch.clone())).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        queue.settle(&batch, &response).await;
    }
    let (status, page) = get(&api, "ListAuditFunction", "/v1/audit/events", &auditor).await;
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["type"] == "account.created"), "{page}");
    let text = page.to_string();
    assert!(!text.contains("@acme.example"), "an email in the audit trail: {text}");
}

#[tokio::test]
async fn a_member_cannot_pay_themselves_from_another_users_account() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (victim, savings) = victim(&api, 5_000).await;
    let mallory = api.token("acme", "mallory@acme.example").await;
    let own = api.account(&mallory, "USD", false).await;

    // The victim's account is not even visible: 404, as for an unknown id.
    let (status, _) = parts(&api.authorize(&mallory, &savings, &own, 5_000, "USD").await);
    assert_eq!(status, 404);
    let (status, _) =
        parts(&api.get("GetAccountFunction", "/v1/accounts/{id}", &savings, &mallory, &[]).await);
    assert_eq!(status, 404);
    // Nor can they capture a payment of the victim's they learnt the id of.
    let bystander = api.token("acme", "bystander@acme.example").await;
    let shop = api.account(&bystander, "USD", false).await;
    let id = payment_id(api.authorize(&victim, &savings, &shop, 1_000, "USD").await).await;
    assert_eq!(parts(&api.capture(&mallory, &id, None).await).0, 404);
    assert_eq!(parts(&api.void(&mallory, &id).await).0, 404);
    assert_eq!(parts(&api.get("GetPaymentFunction", "/v1/payments/{id}", &id, &mallory, &[]).await).0, 404);

    assert_eq!(api.balance(&victim, &savings).await["available"], 4_000, "only the victim's own hold");
    assert_eq!(api.balance(&mallory, &own).await["posted"], 0, "nothing moved");
}

#[tokio::test]
async fn a_member_cannot_give_themselves_credit_and_overdrafts_are_bounded() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let mallory = api.token("acme", "mallory@acme.example").await;
    let key = uuid::Uuid::new_v4().to_string();
    let unlimited =
        json!({"currency": "USD", "allow_overdraft": true, "overdraft_limit": 1_000_000_000_000i64});
    let refused =
        api.post("CreateAccountFunction", "/v1/accounts", None, &mallory, Some(&key), &unlimited).await;
    assert_eq!(assert_problem(&refused, 403)["status"], 403);
    // Without a limit there is no overdraft at all, for anyone.
    let owner = api.treasurer("acme").await;
    let key = uuid::Uuid::new_v4().to_string();
    let unbounded = json!({"currency": "USD", "allow_overdraft": true});
    let response =
        api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &unbounded).await;
    assert_eq!(assert_problem(&response, 400)["field"], "overdraft_limit");

    // An owner's overdraft account spends down to −limit, not a unit further.
    let key = uuid::Uuid::new_v4().to_string();
    let bounded = json!({"currency": "USD", "allow_overdraft": true, "overdraft_limit": 1_000, "owner": {"type": "tenant"}});
    let response =
        api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &bounded).await;
    let (status, account) = parts(&response);
    assert_eq!((status, account["overdraft_limit"].as_i64()), (201, Some(1_000)), "{account}");
    let credit = account["account_id"].as_str().unwrap().to_owned();
    let wallet = api.account(&mallory, "USD", false).await;
    assert_eq!(parts(&api.authorize(&owner, &credit, &wallet, 1_001, "USD").await).0, 422);
    let first = payment_id(api.authorize(&owner, &credit, &wallet, 600, "USD").await).await;
    assert_eq!(parts(&api.authorize(&owner, &credit, &wallet, 401, "USD").await).0, 422, "holds count");
    assert_eq!(api.capture(&owner, &first, None).await.status(), 200);
    payment_id(api.authorize(&owner, &credit, &wallet, 400, "USD").await).await;
    assert_eq!(api.balance(&owner, &credit).await["available"], -1_000);
    assert_eq!(parts(&api.authorize(&owner, &credit, &wallet, 1, "USD").await).0, 422);
}

#[tokio::test]
async fn a_payer_cannot_refund_their_own_payment() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let buyer = api.token("acme", "buyer@acme.example").await;
    let seller = api.token("acme", "seller@acme.example").await;
    let wallet = api.account(&buyer, "USD", false).await;
    let till = api.account(&seller, "USD", false).await;
    api.fund(&buyer, &wallet, 1_000, "USD").await;
    let id = payment_id(api.authorize(&buyer, &wallet, &till, 800, "USD").await).await;
    assert_eq!(api.capture(&buyer, &id, None).await.status(), 200);

    let refused = api.refund(&buyer, &id, 800).await;
    assert_problem(&refused, 403);
    assert_eq!(api.balance(&seller, &till).await["posted"], 800, "the money stays with the payee");
    // The payee gives it back; so may an owner or admin.
    assert_eq!(api.refund(&seller, &id, 300).await.status(), 201);
    let owner = api.treasurer("acme").await;
    assert_eq!(api.refund(&owner, &id, 500).await.status(), 201);
    assert_eq!(api.balance(&buyer, &wallet).await["posted"], 1_000);
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_caller() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let alice = api.token("acme", "alice@acme.example").await;
    let mallory = api.token("acme", "mallory@acme.example").await;
    let body = json!({"currency": "USD", "name": "savings"});
    let post = |token: &str, key: &str| {
        let (token, key, body) = (token.to_owned(), key.to_owned(), body.clone());
        let api = &api;
        async move { api.post("CreateAccountFunction", "/v1/accounts", None, &token, Some(&key), &body).await }
    };
    let first = post(&alice, "shared-key").await;
    let (_, created) = parts(&first);
    let theirs = post(&mallory, "shared-key").await;
    assert_eq!(header(&theirs, "idempotent-replayed"), None, "not alice's stored answer");
    let (status, own) = parts(&theirs);
    assert_eq!(status, 201);
    assert_ne!(own["account_id"], created["account_id"]);
    assert_eq!(own["owner"]["id"], claims(&mallory)["sub"]);
    let again = post(&alice, "shared-key").await;
    assert_eq!((header(&again, "idempotent-replayed"), parts(&again).1), (Some("true"), created));

    // A record of the release before (scoped per tenant only) is never
    // replayed to anyone: the key is refused until it expires.
    use caas::store::idempotency::{IdempotencyRecord, RecordStatus, legacy_record_key};
    let now = caas::clock::Clock::now(stack.clock.as_ref()).unix_timestamp();
    let legacy = IdempotencyRecord {
        tenant_id: "acme".into(),
        principal: String::new(),
        operation: "create-account".into(),
        idempotency_key: "before-the-upgrade".into(),
        status: RecordStatus::Completed,
        fingerprint: "whatever".into(),
        response_status: 201,
        response_body: json!({"account_id": "someone else's"}).to_string(),
        created_at: "before".into(),
        expires_at: now + 3_600,
        in_progress_until_ms: None,
    };
    let mut item: caas::store::Item = serde_dynamo::to_item(&legacy).unwrap();
    item.remove("principal");
    item.extend(legacy_record_key("acme", "create-account", "before-the-upgrade"));
    item.insert("kind".into(), aws_sdk_dynamodb::types::AttributeValue::S("idempotency".into()));
    stack.clients.dynamodb.put_item().table_name(stack.table()).set_item(Some(item)).send().await.unwrap();
    assert_problem(&post(&mallory, "before-the-upgrade").await, 422);
    stack.clock.advance(time::Duration::hours(2));
    let mallory = api.login("acme", "mallory@acme.example").await;
    assert_eq!(post(&mallory, "before-the-upgrade").await.status(), 201, "usable once it expired");
}

#[tokio::test]
async fn a_demoted_admins_token_moves_no_money() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (victim, savings) = victim(&api, 1_000).await;
    let admin = api.invited("acme", "admin@acme.example", Role::Admin).await;
    let wallet = api.account(&admin, "USD", false).await;
    let shop = api.account(&api.token("acme", "shop@acme.example").await, "USD", false).await;
    let id = payment_id(api.authorize(&victim, &savings, &shop, 100, "USD").await).await;

    // The owner demotes the admin; their access token still says admin.
    let owner = api.treasurer("acme").await;
    let admin_id = claims(&admin)["sub"].as_str().unwrap().to_owned();
    let auth = bearer(&owner);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = json!({"role": "member"}).to_string();
    let request = api_event("PATCH", "/v1/users/{id}", &[("id", &admin_id)], &[], &headers, Some(&body));
    assert_eq!(api.call("UpdateUserFunction", request).await.status(), 200);
    assert_eq!(claims(&admin)["roles"], json!(["admin"]));

    // The role is re-checked on the stored directory entry in the same transaction.
    assert_problem(&api.authorize(&admin, &savings, &wallet, 500, "USD").await, 403);
    assert_problem(&api.void(&admin, &id).await, 403);
    assert_eq!(api.balance(&victim, &savings).await["available"], 900, "only the victim's own hold");
}
