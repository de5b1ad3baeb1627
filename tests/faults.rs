//! The real handlers with their AWS clients behind the fault-injection proxy
//! (`caas_tests::faults`): throttling, 500/503, transaction conflicts, dropped
//! connections before and after forwarding, latency, outage windows and the
//! hot-item write limit.
//!
//! - Once the SDK's retries are exhausted, a request is answered 503 with
//!   `Retry-After` (problem+json), never 500; a retry with the same
//!   Idempotency-Key then returns the original result.
//! - The hot-item limit throttles writes to one item the way DynamoDB does.
//! - A random walk of payments (authorize, capture, partial capture, void,
//!   refund over a handful of accounts, concurrently) runs beside the
//!   outbox → stream → queue → audit-writer pipeline, both through the proxy;
//!   afterwards money is conserved, the ledger shows no drift, every committed
//!   change is in the audit chain exactly once and the chain verifies.
//!   `scripts/test --test faults -- --nocapture` prints the figures
//!   (docs/FAULTS.md); `FAULTS_SEED`, `FAULTS_TASKS` and `FAULTS_STEPS` change
//!   the run.
//!
//! The test's own reads go to the emulator directly: verification, and the
//! event source mappings' reads, which Lambda does, not the handlers (the
//! stream through caas-local's `StreamReader`, as tests/stream_stall.rs reads
//! it; the queue through `triggers::QueueTrigger`).

use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use caas::App;
use caas::clients::Clients;
use caas::clock::{Clock, SystemClock};
use caas::config::Config;
use caas::ledger::{Balances, Movement};
use caas::outbox::drain::SweepRequest;
use caas::tenant::TenantId;
use caas_local::StreamReader;
use caas_tests::api::{Api, api_event, dispatch};
use caas_tests::faults::{
    Attempts, Fault, FaultPlan, FaultProxy, FaultStats, HotItemLimit, Outage, Scope, SeededRng, Service,
};
use caas_tests::triggers::{QueueTrigger, lambda_event, outbox_drain_stream_reader};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANT: &str = "faults";
const TWI: Scope = Scope::Operation(Service::DynamoDb, "TransactWriteItems");

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The endpoint scripts/test started the emulator on.
fn emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts the emulator")
}

/// `function`'s app as template.yaml configures it, on `clients`.
fn app_on(stack: &TestStack, function: &str, clients: &Clients, clock: Arc<dyn Clock>) -> App {
    let env = stack.env(function, &[]);
    let config = Config::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("config of {function}: {e}"));
    App::with_clock(config, clients.clone(), clock)
}

/// A stack, a user of `TENANT`, and the proxy the handlers' clients go through.
struct Rig {
    stack: TestStack,
    proxy: FaultProxy,
    attempts: Attempts,
    token: String,
}

impl Rig {
    async fn new() -> Self {
        let stack = TestStack::new().await;
        let token = Api::new(&stack).token(TENANT, "ops@example.com").await;
        let proxy = FaultProxy::start(&emulator(), FaultPlan::quiet()).await.expect("start the fault proxy");
        Self { stack, proxy, attempts: Attempts::default(), token }
    }

    /// `function` behind the proxy, like a container of its own (its own
    /// clients and SDK retry quota), on `clock`.
    fn app_with_clock(&self, function: &str, clock: Arc<dyn Clock>) -> App {
        app_on(&self.stack, function, &self.proxy.clients(&self.stack.sdk, &self.attempts), clock)
    }

    /// `function` behind the proxy (the stack's manual clock, like the token's).
    fn app(&self, function: &str) -> App {
        self.app_with_clock(function, self.stack.clock.clone())
    }

    fn direct(&self) -> Api<'_> {
        Api::new(&self.stack)
    }
}

/// An idempotent POST through `app`.
async fn post(
    app: &App,
    function: &str,
    route: &str,
    id: Option<&str>,
    token: &str,
    key: &str,
    body: &Value,
) -> Response<Body> {
    let bearer = format!("Bearer {token}");
    let headers =
        [("authorization", bearer.as_str()), ("content-type", "application/json"), ("idempotency-key", key)];
    let params: Vec<(&str, &str)> = id.map(|id| vec![("id", id)]).unwrap_or_default();
    let body = body.to_string();
    dispatch(app, function, api_event("POST", route, &params, &[], &headers, Some(&body))).await
}

/// Whether the answer is 503 problem+json with Retry-After.
fn check_unavailable(response: &Response<Body>, what: &str) -> Result<(), String> {
    let (status, body) = parts(response);
    let problem = header(response, "content-type") == Some("application/problem+json");
    let retry_after = header(response, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok());
    if status == 503 && problem && retry_after && body["status"] == 503 {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected 503 problem+json with Retry-After, got {status} (Retry-After: {retry_after}): {body}"
        ))
    }
}

async fn totals(api: &Api<'_>, token: &str, account: &str) -> Balances {
    let (status, body) =
        parts(&api.get("GetAccountFunction", "/v1/accounts/{id}", account, token, &[]).await);
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["totals"].clone()).expect("account totals")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_answer_503_with_retry_after_and_the_retry_the_original() {
    let rig = Rig::new().await;
    let direct = rig.direct();
    let payer = direct.account(&rig.token, "USD", false).await;
    let payee = direct.account(&rig.token, "USD", false).await;
    direct.fund(&rig.token, &payer, 100_000, "USD").await;
    let create = rig.app("CreatePaymentFunction");

    let plans = [
        (
            "ThrottlingException on every DynamoDB request",
            FaultPlan::new(1).inject(Fault::Throttling, 1.0, Scope::DYNAMODB),
        ),
        (
            "ProvisionedThroughputExceededException on every DynamoDB request",
            FaultPlan::new(1).inject(Fault::ThroughputExceeded, 1.0, Scope::DYNAMODB),
        ),
        (
            "HTTP 500 on every DynamoDB request",
            FaultPlan::new(1).inject(Fault::InternalError, 1.0, Scope::DYNAMODB),
        ),
        (
            "HTTP 503 on every DynamoDB request",
            FaultPlan::new(1).inject(Fault::Unavailable, 1.0, Scope::DYNAMODB),
        ),
        ("HTTP 500 on every transaction", FaultPlan::new(1).inject(Fault::InternalError, 1.0, TWI)),
        (
            "connection dropped before forwarding",
            FaultPlan::new(1).inject(Fault::DropBeforeForward, 1.0, Scope::DYNAMODB),
        ),
        (
            "TransactionConflict on every transaction",
            FaultPlan::new(1).inject(Fault::TransactionConflict, 1.0, TWI),
        ),
        (
            "hot-item limit on the payer's balance",
            FaultPlan::new(1).hot_items(HotItemLimit {
                units_per_second: 0.0,
                burst_units: 0.0,
                ..HotItemLimit::partition_limit_scaled_down(1.0).only_keys_containing(payer.as_str())
            }),
        ),
        (
            // A new container's first request fetches the token key from KMS.
            "HTTP 500 on every KMS request (a new container)",
            FaultPlan::new(1).inject(Fault::InternalError, 1.0, Scope::Service(Service::Kms)),
        ),
    ];
    let mut failures = Vec::new();
    for (n, (what, plan)) in plans.into_iter().enumerate() {
        let key = format!("exhausted-{n}");
        let body =
            json!({ "amount": 100, "currency": "USD", "payer_account_id": payer, "payee_account_id": payee });
        let fresh;
        let app = if what.contains("KMS") {
            fresh = rig.app("CreatePaymentFunction");
            &fresh
        } else {
            &create
        };
        rig.proxy.set_plan(plan);
        let response =
            post(app, "CreatePaymentFunction", "/v1/payments", None, &rig.token, &key, &body).await;
        failures.extend(check_unavailable(&response, what).err());
        rig.proxy.set_plan(FaultPlan::quiet());
        let retried = post(app, "CreatePaymentFunction", "/v1/payments", None, &rig.token, &key, &body).await;
        let (status, payment) = parts(&retried);
        let replayed = header(&retried, "idempotent-replayed");
        if status != 201 || replayed.is_some() {
            failures.push(format!(
                "{what}: the retry with the same key: {status} {payment} (replayed: {replayed:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every attempt of the transaction reaches the table, no answer reaches the
    // handler: the first attempt committed. The retry is answered from it.
    let key = "dropped-after";
    let body =
        json!({ "amount": 250, "currency": "USD", "payer_account_id": payer, "payee_account_id": payee });
    let before = totals(&direct, &rig.token, &payer).await;
    rig.proxy.set_plan(FaultPlan::new(1).inject(Fault::DropAfterForward, 1.0, TWI));
    let response = post(&create, "CreatePaymentFunction", "/v1/payments", None, &rig.token, key, &body).await;
    check_unavailable(&response, "connection dropped after every transaction").unwrap();
    rig.proxy.set_plan(FaultPlan::quiet());
    let retried = post(&create, "CreatePaymentFunction", "/v1/payments", None, &rig.token, key, &body).await;
    let (status, payment) = parts(&retried);
    assert_eq!(status, 201, "{payment}");
    assert_eq!(header(&retried, "idempotent-replayed"), Some("true"), "answered from the committed record");
    let after = totals(&direct, &rig.token, &payer).await;
    assert_eq!(after.debits_pending - before.debits_pending, 250, "held exactly once");
    let stats = rig.proxy.stats();
    assert!(stats.fault(Fault::DropAfterForward) >= 2, "{stats:?}");
    assert!(rig.attempts.retries() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_answered_from_the_idempotency_record_by_the_sdk_retry() {
    let rig = Rig::new().await;
    let direct = rig.direct();
    let payer = direct.account(&rig.token, "EUR", false).await;
    let payee = direct.account(&rig.token, "EUR", false).await;
    direct.fund(&rig.token, &payer, 10_000, "EUR").await;
    let create = rig.app("CreatePaymentFunction");
    let capture = rig.app("CapturePaymentFunction");

    // The first transaction commits and its answer is lost; the SDK retries it
    // and meets its own write.
    rig.proxy.set_plan(FaultPlan::new(7).inject_at_most(Fault::DropAfterForward, 1.0, TWI, 1));
    let body =
        json!({ "amount": 4_000, "currency": "EUR", "payer_account_id": payer, "payee_account_id": payee });
    let first =
        post(&create, "CreatePaymentFunction", "/v1/payments", None, &rig.token, "lost-1", &body).await;
    let (status, payment) = parts(&first);
    assert_eq!(status, 201, "{payment}");
    assert_eq!(rig.proxy.stats().fault(Fault::DropAfterForward), 1);
    let id = payment["payment_id"].as_str().expect("payment id").to_owned();
    let again =
        post(&create, "CreatePaymentFunction", "/v1/payments", None, &rig.token, "lost-1", &body).await;
    assert_eq!(parts(&again), (201, payment.clone()));
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));

    rig.proxy.set_plan(FaultPlan::new(8).inject_at_most(Fault::DropAfterForward, 1.0, TWI, 1));
    let route = "/v1/payments/{id}/capture";
    let captured = post(
        &capture,
        "CapturePaymentFunction",
        route,
        Some(&id),
        &rig.token,
        "lost-2",
        &json!({"amount": 1_500}),
    )
    .await;
    let (status, view) = parts(&captured);
    assert_eq!(status, 200, "{view}");
    assert_eq!((view["status"].as_str(), view["captured_amount"].as_i64()), (Some("captured"), Some(1_500)));
    let payer_totals = totals(&direct, &rig.token, &payer).await;
    assert_eq!(
        (payer_totals.debits_pending, payer_totals.debits_posted),
        (0, 1_500),
        "captured exactly once"
    );
    let report = caas::ledger::verify::verify_ledger(
        &rig.stack.clients.dynamodb,
        &rig.stack.table(),
        Some(&TenantId::parse(TENANT).expect("tenant")),
        None,
    )
    .await
    .expect("verify");
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_reaches_the_sdk_as_dynamodb_would_send_it() {
    use aws_sdk_dynamodb::error::SdkError;
    let stack = TestStack::new().await;
    let proxy = FaultProxy::start(&emulator(), FaultPlan::quiet()).await.expect("start the fault proxy");
    // No SDK retries: each request meets its fault.
    let sdk = stack.sdk.to_builder().retry_config(aws_config::retry::RetryConfig::disabled()).build();
    let dynamodb = proxy.clients(&sdk, &Attempts::default()).dynamodb;
    let table = stack.table();
    let put = |pk: &str| {
        dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("sk", AttributeValue::S("FAULT".into()))
            .send()
    };
    let stored = |pk: &'static str| {
        let direct = stack.clients.dynamodb.clone();
        let table = table.clone();
        async move {
            let key =
                [("pk", pk), ("sk", "FAULT")].map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())));
            let item =
                direct.get_item().table_name(table).set_key(Some(key.into())).consistent_read(true).send();
            item.await.expect("direct read").item.is_some()
        }
    };
    let all = |fault| FaultPlan::new(3).inject(fault, 1.0, Scope::Any);

    proxy.set_plan(all(Fault::Throttling));
    let error = put("T#f#1").await.expect_err("throttled");
    assert_eq!(error.as_service_error().and_then(|e| e.meta().code()), Some("ThrottlingException"));
    proxy.set_plan(all(Fault::ThroughputExceeded));
    let error = put("T#f#2").await.expect_err("throttled");
    assert!(error.as_service_error().is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()));
    for (fault, status, code) in
        [(Fault::InternalError, 500, "InternalServerError"), (Fault::Unavailable, 503, "ServiceUnavailable")]
    {
        proxy.set_plan(all(fault));
        let error = put("T#f#3").await.expect_err("server error");
        let SdkError::ServiceError(service) = &error else { panic!("{fault}: {error:?}") };
        assert_eq!((service.raw().status().as_u16(), service.err().meta().code()), (status, Some(code)));
    }
    assert!(!stored("T#f#1").await && !stored("T#f#2").await && !stored("T#f#3").await, "nothing forwarded");

    // Drops: no answer at all; after forwarding, the write happened.
    proxy.set_plan(all(Fault::DropBeforeForward));
    let error = put("T#f#4").await.expect_err("dropped");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    assert!(!stored("T#f#4").await);
    proxy.set_plan(all(Fault::DropAfterForward));
    let error = put("T#f#5").await.expect_err("dropped");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");
    assert!(stored("T#f#5").await, "the write happened, the client never heard");

    // A conflict cancels the transaction with one reason per action.
    proxy.set_plan(all(Fault::TransactionConflict));
    let action = |pk: &str| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(
                aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(pk.into()))
                    .item("sk", AttributeValue::S("FAULT".into()))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let error = dynamodb
        .transact_write_items()
        .transact_items(action("T#f#6"))
        .transact_items(action("T#f#7"))
        .transact_items(action("T#f#8"))
        .send()
        .await
        .expect_err("cancelled");
    let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        cancelled,
    )) = error.as_service_error()
    else {
        panic!("expected a cancelled transaction: {error:?}");
    };
    let mut codes: Vec<_> =
        cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or_default()).collect();
    codes.sort();
    assert_eq!(codes, ["None", "None", "TransactionConflict"]);

    // Latency delays, and the counters add up.
    proxy.set_plan(FaultPlan::new(3).latency(1.0, Duration::from_millis(30), Duration::from_millis(30)));
    put("T#f#9").await.expect("delayed, then forwarded");
    let stats = proxy.stats();
    assert_eq!(stats.delayed, 1);
    assert_eq!(stats.injected(), 7, "{stats:?}");
    assert_eq!(stats.requests, 8);
    assert_eq!(stats.forwarded, 2, "the drop after forwarding and the delayed put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_item_limit_throttles_writes_to_one_item_like_dynamodb() {
    let stack = TestStack::new().await;
    let proxy = FaultProxy::start(&emulator(), FaultPlan::quiet()).await.expect("start the fault proxy");
    // No SDK retries here: every throttle is seen.
    let sdk = stack.sdk.to_builder().retry_config(aws_config::retry::RetryConfig::disabled()).build();
    let clients = proxy.clients(&sdk, &Attempts::default());
    let table = stack.table();
    // A burst of 5 write units, refilled at 0.01 units per second.
    let limit = HotItemLimit {
        units_per_second: 0.01,
        burst_units: 5.0,
        ..HotItemLimit::partition_limit_scaled_down(1.0)
    };
    proxy.set_plan(FaultPlan::quiet().hot_items(limit));
    let put = |pk: &'static str| {
        clients
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S("HOT".into()))
            .send()
    };
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(put("T#hot#A").await.map_err(|e| {
            e.as_service_error().map(|s| s.is_provisioned_throughput_exceeded_exception()).unwrap_or(false)
        }));
    }
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(accepted, 5, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(_) | Err(true))), "{outcomes:?}");
    assert!(put("T#hot#B").await.is_ok(), "another item has its own bucket");

    // In a transaction the throttled item's reason is ThrottlingError, the others None.
    let action = |pk: &str| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(
                aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(pk.into()))
                    .item("sk", AttributeValue::S("HOT".into()))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let error = clients
        .dynamodb
        .transact_write_items()
        .transact_items(action("T#hot#C"))
        .transact_items(action("T#hot#A"))
        .send()
        .await
        .expect_err("the hot item is throttled");
    let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        cancelled,
    )) = error.as_service_error()
    else {
        panic!("expected a cancelled transaction: {error:?}");
    };
    let codes: Vec<_> =
        cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or_default()).collect();
    assert_eq!(codes, ["None", "ThrottlingError"]);
    let hottest = &proxy.hot_items()[0];
    assert!(hottest.key.ends_with("/T#hot#A/HOT") && hottest.throttled >= 3, "{hottest:?}");
    assert_eq!(proxy.stats().hot_item_throttles, hottest.throttled);
}

// ---------------------------------------------------------------- the random walk

/// The walk's fault plan: every kind at once.
fn walk_plan(seed: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .inject(Fault::Throttling, 0.03, Scope::DYNAMODB)
        .inject(Fault::ThroughputExceeded, 0.03, Scope::DYNAMODB)
        .inject(Fault::TransactionConflict, 0.05, TWI)
        .inject(Fault::InternalError, 0.02, Scope::Any)
        .inject(Fault::Unavailable, 0.02, Scope::Any)
        .inject(Fault::DropBeforeForward, 0.02, Scope::Any)
        .inject(Fault::DropAfterForward, 0.03, Scope::Any)
        .latency(0.10, Duration::from_millis(5), Duration::from_millis(60))
        .outage(Outage {
            every: Duration::from_secs(5),
            lasting: Duration::from_millis(300),
            fault: Fault::Throttling,
            scope: Scope::DYNAMODB,
        })
        // 1,000 WCU/s scaled down 80 times: 12.5 units (6 transactional item
        // writes) per second per item, so a busy balance item is throttled.
        .hot_items(HotItemLimit::partition_limit_scaled_down(80.0))
}

/// Answers a client retries with the same key: 503 and 409 in-progress.
fn retryable(status: u16, body: &Value) -> bool {
    status == 503 || (status == 409 && body["type"] == "urn:caas:problem:in-progress")
}

#[derive(Debug, Default)]
struct ClientFigures {
    commands: u64,
    calls: u64,
    answers: BTreeMap<u16, u64>,
    unavailable: u64,
    in_progress: u64,
    lost: u64,
    lost_replayed_equal: u64,
    lost_reevaluated: u64,
    by_operation: BTreeMap<&'static str, u64>,
    insufficient_funds: u64,
    violations: Vec<String>,
}

/// A final answer.
struct Answer {
    status: u16,
    body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Authorize,
    Capture,
    PartialCapture,
    Void,
    Refund,
    /// Capture of a payment that is not authorized: 409.
    BadCapture,
    /// Refund above the refundable amount: 422.
    BadRefund,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Authorize => "authorize",
            Op::Capture => "capture",
            Op::PartialCapture => "partial capture",
            Op::Void => "void",
            Op::Refund => "refund",
            Op::BadCapture => "capture (not authorized)",
            Op::BadRefund => "refund (above refundable)",
        }
    }
}

#[derive(Debug, Clone)]
struct ModelPayment {
    id: String,
    payer: String,
    payee: String,
    amount: i64,
    status: &'static str,
    captured: i64,
    refunded: i64,
    events: Vec<String>,
}

struct Walk<'a> {
    token: &'a str,
    create: App,
    capture: App,
    void: App,
    refund: App,
    client: RefCell<ClientFigures>,
    balances: RefCell<BTreeMap<String, Balances>>,
    payments: RefCell<Vec<ModelPayment>>,
    lost_rate: f64,
}

impl Walk<'_> {
    /// Sends one command until it has a final answer: 503 and in-progress are
    /// retried with the same key; a share of final answers is "lost" (the
    /// client never hears it) and the retry must return the original.
    async fn send(
        &self,
        rng: &mut SeededRng,
        op: Op,
        function: &'static str,
        route: &str,
        id: Option<&str>,
        body: Value,
    ) -> Answer {
        let app = match function {
            "CreatePaymentFunction" => &self.create,
            "CapturePaymentFunction" => &self.capture,
            "VoidPaymentFunction" => &self.void,
            _ => &self.refund,
        };
        let key = uuid::Uuid::new_v4().to_string();
        let lose = rng.chance(self.lost_rate);
        let mut lost: Option<Answer> = None;
        {
            let mut client = self.client.borrow_mut();
            client.commands += 1;
            *client.by_operation.entry(op.name()).or_default() += 1;
        }
        for _ in 0..300 {
            let response = post(app, function, route, id, self.token, &key, &body).await;
            let (status, answer) = parts(&response);
            let replayed = header(&response, "idempotent-replayed") == Some("true");
            let retry_after = header(&response, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok());
            let problem = header(&response, "content-type") == Some("application/problem+json");
            match self.judge(
                op,
                &mut lost,
                lose,
                Answer { status, body: answer },
                replayed,
                problem,
                retry_after,
            ) {
                Some(answer) => return answer,
                // Retry-After is honoured scaled down (1 s → 20-60 ms) to keep the run short.
                None => tokio::time::sleep(Duration::from_millis(rng.between(20, 60) as u64)).await,
            }
        }
        self.client.borrow_mut().violations.push(format!("{}: no final answer after 300 tries", op.name()));
        Answer { status: 0, body: Value::Null }
    }

    /// Counts one answer; the final answer, or `None` to retry with the same key.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        op: Op,
        lost: &mut Option<Answer>,
        lose: bool,
        answer: Answer,
        replayed: bool,
        problem: bool,
        retry_after: bool,
    ) -> Option<Answer> {
        let Answer { status, body } = &answer;
        let status = *status;
        let mut client = self.client.borrow_mut();
        client.calls += 1;
        *client.answers.entry(status).or_default() += 1;
        if status >= 500 {
            if status != 503 || !problem || !retry_after {
                client
                    .violations
                    .push(format!("{} answered {status} (Retry-After: {retry_after}): {body}", op.name()));
            }
            client.unavailable += 1;
            return None;
        }
        if retryable(status, body) {
            client.in_progress += 1;
            return None;
        }
        if lose && lost.is_none() {
            // The client never hears this answer: it retries with the same key.
            client.lost += 1;
            *lost = Some(answer);
            return None;
        }
        if let Some(original) = lost.as_ref() {
            if original.status == 422 && is_insufficient(&original.body) {
                // Nothing was committed, so nothing is stored: the retry is decided afresh.
                client.lost_reevaluated += 1;
            } else if (original.status, &original.body) == (status, body) && (status >= 400 || replayed) {
                client.lost_replayed_equal += 1;
            } else {
                client.violations.push(format!(
                    "{}: the retry of a lost answer {} {} got {status} {body} (replayed: {replayed})",
                    op.name(),
                    original.status,
                    original.body
                ));
            }
        }
        Some(answer)
    }

    fn violation(&self, text: String) {
        self.client.borrow_mut().violations.push(text);
    }

    fn apply(&self, payer: &str, payee: &str, movement: Movement) {
        let (payer_delta, payee_delta) = movement.deltas();
        let mut balances = self.balances.borrow_mut();
        for (account, delta) in [(payer, payer_delta), (payee, payee_delta)] {
            let entry = balances.entry(account.to_owned()).or_default();
            // The walk's amounts are far from the ledger's range.
            *entry = entry.apply(&delta).expect("the model's totals stay within i64");
        }
    }

    /// One task of the walk: `steps` random commands on its own payments,
    /// between the shared accounts.
    async fn task(&self, seed: u64, steps: u64, accounts: &[(&'static str, Vec<String>)]) {
        let mut rng = SeededRng::new(seed);
        let mut mine: Vec<usize> = Vec::new();
        for _ in 0..steps {
            let payments = self.payments.borrow().clone();
            let authorized: Vec<usize> =
                mine.iter().copied().filter(|&i| payments[i].status == "authorized").collect();
            let refundable: Vec<usize> =
                mine.iter().copied().filter(|&i| payments[i].captured > payments[i].refunded).collect();
            let settled: Vec<usize> =
                mine.iter().copied().filter(|&i| payments[i].status != "authorized").collect();
            let mut choices = vec![(Op::Authorize, 4)];
            if !authorized.is_empty() {
                choices.extend([(Op::Capture, 2), (Op::PartialCapture, 2), (Op::Void, 1)]);
            }
            if !refundable.is_empty() {
                choices.extend([(Op::Refund, 3), (Op::BadRefund, 1)]);
            }
            if !settled.is_empty() {
                choices.push((Op::BadCapture, 1));
            }
            let total: u32 = choices.iter().map(|c| c.1).sum();
            let mut pick = rng.below(u64::from(total)) as u32;
            let op = choices
                .iter()
                .find(|c| {
                    if pick < c.1 {
                        true
                    } else {
                        pick -= c.1;
                        false
                    }
                })
                .map_or(Op::Authorize, |c| c.0);
            let choose = |rng: &mut SeededRng, from: &[usize]| *rng.pick(from);
            match op {
                Op::Authorize => {
                    let (currency, ids) = rng.pick(accounts);
                    let payer = rng.pick(ids).clone();
                    let payee = loop {
                        let candidate = rng.pick(ids);
                        if *candidate != payer {
                            break candidate.clone();
                        }
                    };
                    let amount = rng.between(100, 6_000);
                    let body = json!({ "amount": amount, "currency": currency, "payer_account_id": payer, "payee_account_id": payee });
                    let answer =
                        self.send(&mut rng, op, "CreatePaymentFunction", "/v1/payments", None, body).await;
                    match answer.status {
                        201 if answer.body["status"] == "authorized" && answer.body["amount"] == amount => {
                            self.apply(&payer, &payee, Movement::Authorize { amount });
                            let id = answer.body["payment_id"].as_str().unwrap_or_default().to_owned();
                            let mut payments = self.payments.borrow_mut();
                            mine.push(payments.len());
                            payments.push(ModelPayment {
                                id,
                                payer,
                                payee,
                                amount,
                                status: "authorized",
                                captured: 0,
                                refunded: 0,
                                events: vec!["payment.authorized".into()],
                            });
                        }
                        422 if is_insufficient(&answer.body) => {
                            self.client.borrow_mut().insufficient_funds += 1
                        }
                        _ => self.violation(format!("authorize: {} {}", answer.status, answer.body)),
                    }
                }
                Op::Capture | Op::PartialCapture | Op::Void => {
                    let i = choose(&mut rng, &authorized);
                    let p = payments[i].clone();
                    let (function, route, body, captured) = match op {
                        Op::Void => ("VoidPaymentFunction", "/v1/payments/{id}/void", json!({}), 0),
                        Op::Capture => {
                            ("CapturePaymentFunction", "/v1/payments/{id}/capture", json!({}), p.amount)
                        }
                        _ => {
                            let amount = rng.between(1, p.amount);
                            (
                                "CapturePaymentFunction",
                                "/v1/payments/{id}/capture",
                                json!({ "amount": amount }),
                                amount,
                            )
                        }
                    };
                    let answer = self.send(&mut rng, op, function, route, Some(&p.id), body).await;
                    let (status, event, movement) = if op == Op::Void {
                        ("voided", "payment.voided", Movement::Void { authorized: p.amount })
                    } else {
                        ("captured", "payment.captured", Movement::Capture { authorized: p.amount, captured })
                    };
                    if answer.status == 200
                        && answer.body["status"] == status
                        && answer.body["captured_amount"] == captured
                    {
                        self.apply(&p.payer, &p.payee, movement);
                        let mut payments = self.payments.borrow_mut();
                        payments[i].status = status;
                        payments[i].captured = captured;
                        payments[i].events.push(event.into());
                    } else {
                        self.violation(format!("{}: {} {}", op.name(), answer.status, answer.body));
                    }
                }
                Op::Refund | Op::BadRefund => {
                    let i = choose(&mut rng, &refundable);
                    let p = payments[i].clone();
                    let left = p.captured - p.refunded;
                    let amount =
                        if op == Op::Refund { rng.between(1, left) } else { left + rng.between(1, 500) };
                    let route = "/v1/payments/{id}/refunds";
                    let answer = self
                        .send(
                            &mut rng,
                            op,
                            "RefundPaymentFunction",
                            route,
                            Some(&p.id),
                            json!({ "amount": amount }),
                        )
                        .await;
                    let refunded = p.refunded + amount;
                    let status = if refunded == p.captured { "refunded" } else { "partially_refunded" };
                    match (op, answer.status) {
                        (Op::Refund, 201)
                            if answer.body["status"] == status
                                && answer.body["refunded_amount"] == refunded =>
                        {
                            self.apply(&p.payer, &p.payee, Movement::Refund { amount });
                            let mut payments = self.payments.borrow_mut();
                            payments[i].status = status;
                            payments[i].refunded = refunded;
                            payments[i].events.push("payment.refunded".into());
                        }
                        (Op::Refund, 422) if is_insufficient(&answer.body) => {
                            self.client.borrow_mut().insufficient_funds += 1;
                        }
                        (Op::BadRefund, 422)
                            if answer.body["detail"].as_str().is_some_and(|d| d.contains("exceeds")) => {}
                        _ => self.violation(format!("{}: {} {}", op.name(), answer.status, answer.body)),
                    }
                }
                Op::BadCapture => {
                    let p = payments[choose(&mut rng, &settled)].clone();
                    let answer = self
                        .send(
                            &mut rng,
                            op,
                            "CapturePaymentFunction",
                            "/v1/payments/{id}/capture",
                            Some(&p.id),
                            json!({}),
                        )
                        .await;
                    if answer.status != 409 || answer.body["type"] != "urn:caas:problem:conflict" {
                        self.violation(format!("{}: {} {}", op.name(), answer.status, answer.body));
                    }
                }
            }
        }
    }
}

fn is_insufficient(body: &Value) -> bool {
    body["detail"].as_str().is_some_and(|d| d.contains("insufficient funds"))
}

#[derive(Debug, Default)]
struct PipelineFigures {
    stream_invocations: u64,
    stream_records: u64,
    stream_batches_failed: u64,
    stream_records_given_up: u64,
    queue_invocations: u64,
    queue_messages: u64,
    queue_messages_failed: u64,
    /// Deliveries of an event audit-writer had already been given.
    queue_duplicates: u64,
    sweeps: u64,
    swept: u64,
}

/// The table stream's event source mapping of outbox-drain, as the local stack
/// runs it (`caas_local::StreamReader`: shard iterators followed, the
/// template's FilterCriteria and BatchSize), read directly from the emulator.
struct OutboxStream {
    reader: StreamReader,
    client: aws_sdk_dynamodbstreams::Client,
}

impl OutboxStream {
    fn new(stack: &TestStack) -> Self {
        Self {
            reader: outbox_drain_stream_reader(stack),
            client: aws_sdk_dynamodbstreams::Client::new(&stack.sdk),
        }
    }
}

/// Lambda's event source mappings for outbox-drain (the table's stream: a
/// batch's failed record and the rest of the batch retried with backoff, at
/// most 10 times, then skipped) and audit-writer (the events queue: batches of
/// 10, failed messages redelivered after the visibility timeout), with the
/// handlers' clients behind the proxy. Runs until `done` and then until every
/// committed change went through; a sweep at the end publishes what the
/// stream skipped.
async fn pipeline(
    drain: &App,
    writer: &App,
    stream: &mut OutboxStream,
    queue: &QueueTrigger,
    done: &Cell<bool>,
) -> PipelineFigures {
    const MAX_RETRIES: u32 = 10;
    // Lambda retries a failed stream batch with backoff; a failed message comes
    // back after the queue's visibility timeout (60 s). Both scaled down.
    const STREAM_BACKOFF: Duration = Duration::from_millis(250);
    const VISIBILITY: Duration = Duration::from_secs(1);
    let mut figures = PipelineFigures::default();
    let mut retries: u32 = 0;
    let mut stream_after = Instant::now();
    let mut queue_after = Instant::now();
    let mut delivered: HashSet<String> = HashSet::new();
    let started = Instant::now();
    loop {
        let walk_over = done.get();
        let mut idle = true;
        while Instant::now() >= stream_after {
            let Some(batch) = stream.reader.next_batch(&stream.client).await.expect("describe the stream")
            else {
                break;
            };
            idle = false;
            let size = batch.records.len();
            figures.stream_invocations += 1;
            figures.stream_records += size as u64;
            let event: dynamodb::Event = serde_json::from_value(json!({ "Records": batch.records }))
                .expect("the reader's records are Lambda's DynamoDB event");
            // Lambda's checkpoint: before the lowest failed record (all of a failed invocation).
            let processed = match outbox_drain::handler(drain, lambda_event(event)).await {
                Ok(response) => response
                    .batch_item_failures
                    .iter()
                    .map(|f| {
                        batch.sequence_numbers.iter().position(|s| Some(s) == f.item_identifier.as_ref())
                    })
                    .collect::<Option<Vec<_>>>()
                    .map_or(0, |failed| failed.into_iter().min().unwrap_or(size)),
                Err(_) => 0,
            };
            stream.reader.checkpoint(&batch.shard_id, processed);
            if processed == size {
                retries = 0;
                continue;
            }
            figures.stream_batches_failed += 1;
            retries += 1;
            if retries > MAX_RETRIES {
                figures.stream_records_given_up += (size - processed) as u64;
                stream.reader.checkpoint(&batch.shard_id, size - processed);
                retries = 0;
            } else {
                stream_after = Instant::now() + STREAM_BACKOFF * retries.min(4);
            }
        }
        while Instant::now() >= queue_after {
            let batch = queue.receive(10).await;
            if batch.records.is_empty() {
                break;
            }
            idle = false;
            figures.queue_invocations += 1;
            figures.queue_messages += batch.records.len() as u64;
            for message in &batch.records {
                let body: Value =
                    message.body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
                if !delivered.insert(body["event_id"].as_str().unwrap_or_default().to_owned()) {
                    figures.queue_duplicates += 1;
                }
            }
            let response = match audit_writer::handler(writer, lambda_event(batch.clone())).await {
                Ok(response) => response,
                Err(_) => {
                    let mut all = SqsBatchResponse::default();
                    for message in &batch.records {
                        all.add_failure(message.message_id.clone().unwrap_or_default());
                    }
                    all
                }
            };
            figures.queue_messages_failed += response.batch_item_failures.len() as u64;
            queue.settle(&batch, &response).await;
            if !response.batch_item_failures.is_empty() {
                queue_after = Instant::now() + VISIBILITY;
            }
        }
        let waiting = Instant::now() < stream_after || Instant::now() < queue_after;
        if walk_over && idle && !waiting {
            figures.sweeps += 1;
            match outbox_drain::sweep(drain, lambda_event(SweepRequest::new(0))).await {
                Ok(report) if report.found == 0 && report.failed == 0 => return figures,
                Ok(report) => figures.swept += report.published as u64,
                Err(_) => {}
            }
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the pipeline did not settle: {figures:?}");
        tokio::time::sleep(Duration::from_millis(if walk_over { 50 } else { 250 })).await;
    }
}

/// The handlers' logged failures with this message, by cause (the error
/// text up to its first colon-separated detail, digits and ids left out).
fn logged_causes(message: &str) -> BTreeMap<String, u64> {
    let mut causes = BTreeMap::new();
    for line in captured_logs().lines() {
        let Ok(log) = serde_json::from_str::<Value>(line) else { continue };
        if log["message"] != message {
            continue;
        }
        let error = log["error"].as_str().unwrap_or("(no error field)");
        let cause: String = error.chars().filter(|c| !c.is_ascii_digit()).collect();
        *causes.entry(cause).or_default() += 1;
    }
    causes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_walk_and_pipeline_under_faults_conserve_money_and_chain_every_change_once() {
    let seed = env_number("FAULTS_SEED", 20_261_125);
    let tasks = env_number("FAULTS_TASKS", 6);
    let steps = env_number("FAULTS_STEPS", 40);
    let rig = Rig::new().await;
    let direct = rig.direct();

    // A handful of accounts in two currencies, funded before the faults start.
    let mut accounts: Vec<(&'static str, Vec<String>)> = Vec::new();
    for (currency, count) in [("USD", 3), ("EUR", 2)] {
        let mut ids = Vec::new();
        for _ in 0..count {
            let id = direct.account(&rig.token, currency, false).await;
            direct.fund(&rig.token, &id, 15_000, currency).await;
            ids.push(id);
        }
        accounts.push((currency, ids));
    }
    let mut stream = OutboxStream::new(&rig.stack);
    let queue = QueueTrigger::new(&rig.stack, "EventsQueue");
    let mut start_balances = BTreeMap::new();
    for id in accounts.iter().flat_map(|(_, ids)| ids) {
        start_balances.insert(id.clone(), totals(&direct, &rig.token, id).await);
    }

    let walk = Walk {
        token: &rig.token,
        create: rig.app("CreatePaymentFunction"),
        capture: rig.app("CapturePaymentFunction"),
        void: rig.app("VoidPaymentFunction"),
        refund: rig.app("RefundPaymentFunction"),
        client: RefCell::new(ClientFigures::default()),
        balances: RefCell::new(start_balances.clone()),
        payments: RefCell::new(Vec::new()),
        lost_rate: 0.08,
    };
    // The pipeline's functions on the real clock: the sweep's grace period is
    // measured against the events' ids (UUIDv7, real time).
    let drain = rig.app_with_clock("OutboxDrainFunction", Arc::new(SystemClock));
    let writer = rig.app_with_clock("AuditWriterFunction", Arc::new(SystemClock));
    let done = Cell::new(false);

    rig.proxy.reset_stats();
    rig.proxy.set_plan(walk_plan(seed));
    let started = Instant::now();
    let walking = async {
        futures::future::join_all((0..tasks).map(|t| walk.task(seed ^ (t + 1), steps, &accounts))).await;
        done.set(true);
    };
    let ((), pipeline_figures) =
        futures::join!(walking, pipeline(&drain, &writer, &mut stream, &queue, &done));
    let elapsed = started.elapsed();
    let stats = rig.proxy.stats();
    let hottest = rig.proxy.hot_items();
    rig.proxy.set_plan(FaultPlan::quiet());

    // Money: the ledger replays without drift and sums to zero per currency;
    // every account holds exactly what the accepted answers moved; no account
    // without overdraft is below zero.
    let mut problems = walk.client.borrow().violations.clone();
    // The verify job itself (ledger replay and audit re-hash), on direct clients.
    let verify_app = rig.stack.app("VerifyFunction");
    let integrity = verify::handler(&verify_app, lambda_event(json!({ "tenant_id": TENANT })))
        .await
        .expect("verify runs");
    if !integrity.ok {
        problems.push(format!("verify: {}", serde_json::to_string(&integrity).unwrap_or_default()));
    }
    let model = walk.balances.borrow().clone();
    for (account, expected) in &model {
        let stored = totals(&direct, &rig.token, account).await;
        if stored != *expected {
            problems.push(format!("account {account}: stored {stored:?}, the answers say {expected:?}"));
        }
        if stored.available < 0 || stored.posted().is_none_or(|posted| posted < 0) {
            problems.push(format!("account {account} is past its limit: {stored:?}"));
        }
    }
    let payments = walk.payments.borrow().clone();
    for p in &payments {
        let (status, stored) =
            parts(&direct.get("GetPaymentFunction", "/v1/payments/{id}", &p.id, &rig.token, &[]).await);
        let events = stored["events"].as_array().map_or(0, Vec::len);
        if status != 200
            || stored["status"] != p.status
            || stored["captured_amount"] != p.captured
            || stored["refunded_amount"] != p.refunded
            || events != p.events.len()
        {
            problems.push(format!("payment {}: stored {stored}, the answers say {p:?}", p.id));
        }
    }

    // Audit: every committed change (outbox item) published and in the chain
    // exactly once, nothing else in it, each payment's events in order.
    let outbox = scan_raw_items(&rig.stack, "kind = :outbox", &[(":outbox", "outbox")]).await;
    // Decoded by the store: the item's key holds the event id.
    let committed: HashSet<String> = outbox
        .iter()
        .map(|item| caas::store::outbox::event_from_image(item.clone().into()))
        .map(|event| event.expect("an outbox item decodes").expect("an outbox item").event_id)
        .collect();
    let unpublished = outbox.iter().filter(|i| !i.contains_key("published_at")).count();
    let mut chain = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = caas::store::audit::entries_after(
            &rig.stack.clients.dynamodb,
            &rig.stack.table(),
            TENANT,
            after,
            500,
        )
        .await
        .expect("read the chain");
        for entry in &page {
            match entry {
                Ok(entry) => {
                    after = entry.seq;
                    chain.push(entry.clone());
                }
                Err(seq) => {
                    after = *seq;
                    problems.push(format!("audit entry {seq} does not decode"));
                }
            }
        }
        if !more || page.is_empty() {
            break;
        }
    }
    let mut seen = HashSet::new();
    let duplicates: Vec<&str> =
        chain.iter().filter(|e| !seen.insert(e.event_id.clone())).map(|e| e.event_id.as_str()).collect();
    let missing = committed.difference(&seen).count();
    let extra = seen.difference(&committed).count();
    if !duplicates.is_empty() || missing > 0 || extra > 0 || unpublished > 0 {
        problems.push(format!(
            "audit: {} committed, {} entries, {} duplicated, {missing} missing, {extra} not committed, {unpublished} unpublished",
            committed.len(),
            chain.len(),
            duplicates.len()
        ));
    }
    let seqs_contiguous = chain.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1);
    if !seqs_contiguous {
        problems.push("audit: the chain's seqs have a gap".into());
    }
    let mut chained: HashMap<&str, Vec<&str>> = HashMap::new();
    for entry in chain.iter().filter(|e| e.aggregate_type == "payment") {
        chained.entry(entry.aggregate_id.as_str()).or_default().push(entry.event_type.as_str());
    }
    for p in &payments {
        let got = chained.get(p.id.as_str()).cloned().unwrap_or_default();
        if got != p.events.iter().map(String::as_str).collect::<Vec<_>>() {
            problems.push(format!("payment {}: chain has {got:?}, the answers say {:?}", p.id, p.events));
        }
    }
    let dead_letters = QueueTrigger::new(&rig.stack, "EventsDLQ").drain().await.len();
    if dead_letters > 0 {
        problems.push(format!("{dead_letters} events in the events DLQ"));
    }

    let client = walk.client.borrow();
    report(&Report {
        seed,
        tasks,
        steps,
        elapsed,
        stats: &stats,
        hottest: &hottest,
        attempts: &rig.attempts,
        client: &client,
        pipeline: &pipeline_figures,
        accounts: model.len(),
        payments: payments.len(),
        integrity: &integrity,
        committed: committed.len(),
        chain: chain.len(),
    });
    assert!(
        stats.injected() > 0 && client.unavailable > 0,
        "the plan injected faults and some outlasted the retries"
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

struct Report<'a> {
    seed: u64,
    tasks: u64,
    steps: u64,
    elapsed: Duration,
    stats: &'a FaultStats,
    hottest: &'a [caas_tests::faults::HotItem],
    attempts: &'a Attempts,
    client: &'a ClientFigures,
    pipeline: &'a PipelineFigures,
    accounts: usize,
    payments: usize,
    integrity: &'a caas::integrity::IntegrityReport,
    committed: usize,
    chain: usize,
}

/// The figures, as Markdown (docs/FAULTS.md takes them from here).
fn report(r: &Report<'_>) {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "fault run: seed {}, {} tasks x {} commands, {:.1} s wall",
        r.seed,
        r.tasks,
        r.steps,
        r.elapsed.as_secs_f64()
    ));
    line(String::new());
    line("| proxy | count |".into());
    line("| --- | ---: |".into());
    line(format!("| requests | {} |", r.stats.requests));
    line(format!("| forwarded to the emulator | {} |", r.stats.forwarded));
    for fault in Fault::ALL {
        line(format!("| {} | {} |", fault.name(), r.stats.fault(fault)));
    }
    line(format!("| of those, in outage windows (ThrottlingException) | {} |", r.stats.outage_faults));
    line(format!("| hot-item limit throttles | {} |", r.stats.hot_item_throttles));
    line(format!(
        "| delayed (latency) | {} ({} ms in all) |",
        r.stats.delayed,
        r.stats.delay_total.as_millis()
    ));
    line(format!("| faults injected in all | {} |", r.stats.injected()));
    line(String::new());
    line("| requests by operation | count |".into());
    line("| --- | ---: |".into());
    for (operation, count) in &r.stats.operations {
        line(format!("| {operation} | {count} |"));
    }
    line(String::new());
    line("| SDK (handlers' clients) | count |".into());
    line("| --- | ---: |".into());
    line(format!("| operations | {} |", r.attempts.operations()));
    line(format!("| attempts | {} |", r.attempts.attempts()));
    line(format!("| retries | {} |", r.attempts.retries()));
    let (transport, server, throttled) = r.attempts.gave_up();
    line(format!("| given up after retries: no answer (connection lost) | {transport} |"));
    line(format!("| given up after retries: HTTP 5xx | {server} |"));
    line(format!("| given up after retries: throttled | {throttled} |"));
    line(format!(
        "| answered with a condition failure or cancellation (not retried by the SDK) | {} |",
        r.attempts.service_errors()
    ));
    line(String::new());
    let c = r.client;
    line("| API client (the walk) | count |".into());
    line("| --- | ---: |".into());
    line(format!("| commands | {} |", c.commands));
    for (op, count) in &c.by_operation {
        line(format!("| - {op} | {count} |"));
    }
    line(format!("| handler calls (retries with the same key included) | {} |", c.calls));
    for (status, count) in &c.answers {
        line(format!("| - answered {status} | {count} |"));
    }
    line(format!("| 503 with Retry-After, retried | {} |", c.unavailable));
    line(format!("| 409 in progress, retried | {} |", c.in_progress));
    line(format!("| answers lost on purpose, retried | {} |", c.lost));
    line(format!("| - the retry returned the original | {} |", c.lost_replayed_equal));
    line(format!("| - nothing committed, decided afresh (insufficient funds) | {} |", c.lost_reevaluated));
    line(format!("| insufficient funds (final) | {} |", c.insufficient_funds));
    line(format!(
        "| 5xx other than 503 with Retry-After | {} |",
        c.answers.iter().filter(|(s, _)| **s >= 500 && **s != 503).map(|(_, n)| n).sum::<u64>()
    ));
    line(String::new());
    let p = r.pipeline;
    line("| pipeline | count |".into());
    line("| --- | ---: |".into());
    line(format!(
        "| outbox-drain stream invocations | {} ({} records) |",
        p.stream_invocations, p.stream_records
    ));
    line(format!("| - with failed records, retried | {} |", p.stream_batches_failed));
    line(format!("| - records given up after 10 retries | {} |", p.stream_records_given_up));
    line(format!("| audit-writer invocations | {} ({} messages) |", p.queue_invocations, p.queue_messages));
    line(format!("| - messages failed, redelivered | {} |", p.queue_messages_failed));
    line(format!(
        "| - deliveries of an event delivered before (skipped by audit-writer) | {} |",
        p.queue_duplicates
    ));
    line(format!("| sweeps | {} ({} events published) |", p.sweeps, p.swept));
    line(String::new());
    let ledger = &r.integrity.ledger;
    line("| checked | count |".into());
    line("| --- | ---: |".into());
    line(format!("| accounts (model = stored) | {} |", r.accounts));
    line(format!("| payments (model = stored) | {} |", r.payments));
    line(format!(
        "| ledger: accounts, entries, transactions replayed | {}, {}, {} |",
        ledger.accounts_checked, ledger.entries_checked, ledger.transactions_checked
    ));
    line(format!(
        "| ledger: drifted accounts, unbalanced transactions | {}, {} |",
        ledger.drift.len(),
        ledger.unbalanced_transactions.len()
    ));
    for total in &ledger.currency_totals {
        line(format!(
            "| Σ posted / pending difference, {} | {} / {} |",
            total.currency, total.posted_sum, total.pending_difference
        ));
    }
    line(format!("| committed changes (outbox items) | {} |", r.committed));
    line(format!("| audit chain entries | {} |", r.chain));
    for chain in &r.integrity.audit {
        line(format!(
            "| chain verifies ({} entries re-hashed) | {} |",
            chain.chain.entries_checked, chain.chain.ok
        ));
    }
    for (title, message) in [
        ("503 answers by cause", "request failed"),
        ("audit-writer group failures by cause", "audit append failed; the group is retried"),
        ("outbox-drain: a queue unavailable", "queue unavailable"),
        ("outbox-drain: published, not marked", "published event not marked"),
    ] {
        let causes = logged_causes(message);
        if causes.is_empty() {
            continue;
        }
        line(String::new());
        line(format!("| {title} | count |"));
        line("| --- | ---: |".into());
        for (cause, count) in causes {
            line(format!("| {} | {count} |", cause.replace('|', "/")));
        }
    }
    let throttled: Vec<_> = r.hottest.iter().filter(|i| i.throttled > 0).collect();
    line(String::new());
    line(format!(
        "hot-item limit: {} items written, {} of them throttled at least once",
        r.hottest.len(),
        throttled.len()
    ));
    line(String::new());
    line("| item (table/pk/sk, table left out) | writes | units | throttled |".into());
    line("| --- | ---: | ---: | ---: |".into());
    for item in throttled.iter().take(8) {
        let key = item.key.split_once('/').map_or(item.key.as_str(), |(_, key)| key);
        line(format!("| `{key}` | {} | {} | {} |", item.writes, item.units, item.throttled));
    }
    if throttled.len() > 8 {
        let rest = &throttled[8..];
        line(format!(
            "| {} more | {} | {} | {} |",
            rest.len(),
            rest.iter().map(|i| i.writes).sum::<u64>(),
            rest.iter().map(|i| i.units).sum::<f64>(),
            rest.iter().map(|i| i.throttled).sum::<u64>()
        ));
    }
    println!("{out}");
}
