//! A fault-injection proxy on loopback between the AWS SDK and the emulator.
//!
//! Handlers get clients whose endpoint is the proxy ([`FaultProxy::clients`]);
//! the proxy forwards every request to the emulator unless its [`FaultPlan`]
//! picks a fault for it:
//!
//! - DynamoDB errors the SDK parses: `ProvisionedThroughputExceededException`
//!   and `ThrottlingException` (HTTP 400), `TransactionCanceledException` with a
//!   `TransactionConflict` reason (TransactWriteItems, one reason per action);
//! - HTTP 500 and 503 (any service);
//! - the connection closed before forwarding (nothing happened) or after
//!   forwarding (the request took effect, the client never heard);
//! - added latency, independently of the above;
//! - outage windows: every `every`, for `lasting`, every matching request fails;
//! - [`HotItemLimit`]: DynamoDB's per-partition write limit (1,000 WCU/s),
//!   scaled down, as a token bucket per written item: a write naming an item
//!   whose bucket is empty is throttled the way DynamoDB throttles it.
//!
//! Operations are told apart by the `X-Amz-Target` header
//! (`DynamoDB_20120810.TransactWriteItems`, `AmazonSQS.SendMessageBatch`,
//! `TrentService.Sign`). Faults are drawn from one seeded RNG (with concurrent
//! requests, which request gets which draw depends on arrival order; the rates
//! do not) and counted per kind ([`FaultProxy::stats`]).

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use caas::clients::Clients;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

type Response = hyper::Response<Full<Bytes>>;

const DYNAMODB_TYPE_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// A small deterministic PRNG (SplitMix64): the same seed, the same draws.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = high.saturating_sub(low).max(0) as u64;
        low + self.below(span.saturating_add(1)) as i64
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The AWS service a request is for, from its `X-Amz-Target` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    DynamoDb,
    DynamoDbStreams,
    Sqs,
    Kms,
    Other,
}

impl Service {
    fn of(prefix: &str) -> Self {
        match prefix {
            p if p.starts_with("DynamoDBStreams") => Service::DynamoDbStreams,
            p if p.starts_with("DynamoDB") => Service::DynamoDb,
            "AmazonSQS" => Service::Sqs,
            "TrentService" => Service::Kms,
            _ => Service::Other,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Service::DynamoDb => "DynamoDB",
            Service::DynamoDbStreams => "DynamoDBStreams",
            Service::Sqs => "SQS",
            Service::Kms => "KMS",
            Service::Other => "other",
        }
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Any,
    Service(Service),
    /// One operation of one service (`Scope::Operation(Service::DynamoDb, "TransactWriteItems")`).
    Operation(Service, &'static str),
}

impl Scope {
    pub const DYNAMODB: Scope = Scope::Service(Service::DynamoDb);

    fn matches(&self, service: Service, operation: &str) -> bool {
        match self {
            Scope::Any => true,
            Scope::Service(s) => *s == service,
            Scope::Operation(s, op) => *s == service && *op == operation,
        }
    }
}

/// A fault the proxy answers instead of (or after) forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// HTTP 400 `ProvisionedThroughputExceededException` (DynamoDB only).
    ThroughputExceeded,
    /// HTTP 400 `ThrottlingException` (DynamoDB only).
    Throttling,
    /// HTTP 400 `TransactionCanceledException`, one reason per action, one of
    /// them `TransactionConflict` (DynamoDB TransactWriteItems only).
    TransactionConflict,
    /// HTTP 500.
    InternalError,
    /// HTTP 503.
    Unavailable,
    /// The connection is closed once the request was read; nothing is forwarded.
    DropBeforeForward,
    /// The request is forwarded and answered upstream, then the connection is
    /// closed without an answer: the write happened, the client never heard.
    DropAfterForward,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::ThroughputExceeded,
        Fault::Throttling,
        Fault::TransactionConflict,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::DropBeforeForward,
        Fault::DropAfterForward,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Fault::ThroughputExceeded => "ProvisionedThroughputExceededException (400)",
            Fault::Throttling => "ThrottlingException (400)",
            Fault::TransactionConflict => "TransactionCanceledException: TransactionConflict (400)",
            Fault::InternalError => "HTTP 500",
            Fault::Unavailable => "HTTP 503",
            Fault::DropBeforeForward => "connection dropped before forwarding",
            Fault::DropAfterForward => "connection dropped after forwarding",
        }
    }

    /// Whether this fault makes sense for the operation.
    fn possible(&self, service: Service, operation: &str) -> bool {
        match self {
            Fault::ThroughputExceeded | Fault::Throttling => service == Service::DynamoDb,
            Fault::TransactionConflict => service == Service::DynamoDb && operation == "TransactWriteItems",
            _ => true,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault at a rate (a probability per matching request), optionally at
/// most `limit` times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    pub rate: f64,
    pub scope: Scope,
    pub limit: Option<u64>,
}

/// Added latency: with probability `rate`, a delay uniform in `min..=max`
/// before the request is handled (drawn independently of the faults).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub rate: f64,
    pub min: Duration,
    pub max: Duration,
}

/// Every `every` (from the plan's start), for `lasting`, every request in
/// `scope` gets `fault`: long enough to outlast the SDK's retries.
#[derive(Debug, Clone)]
pub struct Outage {
    pub every: Duration,
    pub lasting: Duration,
    pub fault: Fault,
    pub scope: Scope,
}

/// How the items of the hot-item limit are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotKey {
    /// Table, partition key and sort key: one bucket per item.
    Item,
    /// Table and partition key: one bucket per item collection.
    Partition,
}

/// DynamoDB's per-partition write limit, scaled down, applied per written
/// item: a token bucket of `burst_units` refilled at `units_per_second`.
/// A write costs 1 unit per KiB of the item (Put; 1 for Update, Delete and
/// ConditionCheck), twice that inside TransactWriteItems. A request naming an
/// item whose bucket lacks the units is throttled, and consumes nothing:
/// TransactWriteItems with `TransactionCanceledException` whose reasons say
/// `ThrottlingError` for the throttled items (`None` for the rest), any other
/// write with `single_item_answer`.
#[derive(Debug, Clone)]
pub struct HotItemLimit {
    pub units_per_second: f64,
    pub burst_units: f64,
    pub key: HotKey,
    /// Only items whose key (`table/pk/sk`) contains this are limited.
    pub only_keys_containing: Option<String>,
    /// [`Fault::ThroughputExceeded`] or [`Fault::Throttling`].
    pub single_item_answer: Fault,
    /// The key attributes of the table (`pk`, `sk` in this project).
    pub key_attributes: (String, String),
}

impl HotItemLimit {
    /// DynamoDB's partition limit (1,000 write units per second) divided by
    /// `factor`, with one second of burst.
    pub fn partition_limit_scaled_down(factor: f64) -> Self {
        let units = 1000.0 / factor.max(1.0);
        Self {
            units_per_second: units,
            burst_units: units,
            key: HotKey::Item,
            only_keys_containing: None,
            single_item_answer: Fault::ThroughputExceeded,
            key_attributes: ("pk".to_owned(), "sk".to_owned()),
        }
    }

    pub fn keyed_by(mut self, key: HotKey) -> Self {
        self.key = key;
        self
    }

    pub fn only_keys_containing(mut self, needle: impl Into<String>) -> Self {
        self.only_keys_containing = Some(needle.into());
        self
    }
}

/// What the proxy does to requests.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<Rule>,
    pub latency: Option<Latency>,
    pub outage: Option<Outage>,
    pub hot_items: Option<HotItemLimit>,
}

impl FaultPlan {
    /// No faults: every request is forwarded.
    pub fn quiet() -> Self {
        Self::default()
    }

    pub fn new(seed: u64) -> Self {
        Self { seed, ..Self::default() }
    }

    /// `fault` for a share `rate` of the requests in `scope`. Rates of all
    /// rules matching a request add up (at most one fault per request).
    pub fn inject(mut self, fault: Fault, rate: f64, scope: Scope) -> Self {
        self.rules.push(Rule { fault, rate, scope, limit: None });
        self
    }

    /// Like [`inject`](Self::inject), at most `limit` times.
    pub fn inject_at_most(mut self, fault: Fault, rate: f64, scope: Scope, limit: u64) -> Self {
        self.rules.push(Rule { fault, rate, scope, limit: Some(limit) });
        self
    }

    pub fn latency(mut self, rate: f64, min: Duration, max: Duration) -> Self {
        self.latency = Some(Latency { rate, min, max });
        self
    }

    pub fn outage(mut self, outage: Outage) -> Self {
        self.outage = Some(outage);
        self
    }

    pub fn hot_items(mut self, limit: HotItemLimit) -> Self {
        self.hot_items = Some(limit);
        self
    }
}

/// One hot item's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HotItem {
    pub key: String,
    pub writes: u64,
    pub units: f64,
    pub throttled: u64,
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default)]
pub struct FaultStats {
    pub requests: u64,
    pub forwarded: u64,
    /// Requests per `Service.Operation`.
    pub operations: BTreeMap<String, u64>,
    /// Faults injected by kind (outage windows included).
    pub faults: BTreeMap<Fault, u64>,
    /// Of those, injected in an outage window.
    pub outage_faults: u64,
    /// Writes throttled by the hot-item limit.
    pub hot_item_throttles: u64,
    pub delayed: u64,
    pub delay_total: Duration,
    /// Requests the emulator itself could not be reached for (answered 502).
    pub upstream_errors: u64,
}

impl FaultStats {
    /// Every fault injected: drawn, in outage windows, and hot-item throttles.
    pub fn injected(&self) -> u64 {
        self.faults.values().sum::<u64>() + self.hot_item_throttles
    }

    pub fn fault(&self, fault: Fault) -> u64 {
        self.faults.get(&fault).copied().unwrap_or(0)
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    stats: HotItem,
}

struct Installed {
    plan: FaultPlan,
    rng: SeededRng,
    injected: Vec<u64>,
    started: Instant,
    buckets: HashMap<String, Bucket>,
}

struct Shared {
    upstream: String,
    installed: Mutex<Installed>,
    stats: Mutex<FaultStats>,
}

/// The proxy: listens on `127.0.0.1:0` and forwards to the emulator. Stops
/// when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What was decided for one request.
enum Decision {
    Forward,
    Answer(Fault, Response),
    DropBefore,
    DropAfter,
}

/// The error a service returns to make hyper close the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the fault plan")
    }
}

impl std::error::Error for Dropped {}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. `AWS_ENDPOINT_URL`) with `plan`.
    pub async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let uri: http::Uri = upstream
            .parse()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, upstream.to_owned()))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, upstream.to_owned()))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: authority,
            installed: Mutex::new(Installed::from(plan)),
            stats: Mutex::new(FaultStats::default()),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the plan (RNG, limits and hot-item buckets start afresh; the
    /// statistics are kept).
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.installed) = Installed::from(plan);
    }

    pub fn stats(&self) -> FaultStats {
        lock(&self.shared.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = FaultStats::default();
    }

    /// The hot-item limit's items, most throttled first.
    pub fn hot_items(&self) -> Vec<HotItem> {
        let installed = lock(&self.shared.installed);
        let mut items: Vec<HotItem> = installed.buckets.values().map(|b| b.stats.clone()).collect();
        items.sort_by(|a, b| b.throttled.cmp(&a.throttled).then(b.writes.cmp(&a.writes)));
        items
    }

    /// `sdk` with its endpoint moved to the proxy.
    pub fn sdk_config(&self, sdk: &SdkConfig) -> SdkConfig {
        sdk.to_builder().endpoint_url(self.url()).build()
    }

    /// DynamoDB, KMS and SQS clients that go through the proxy (with `sdk`'s
    /// retry and timeout settings), each request counted by `attempts`.
    ///
    /// The SDK keeps its retry quota (standard mode: a token bucket of 500,
    /// a retry costs 5, 10 after a transient error) per retry partition, which
    /// is process-wide and named after the service by default: these clients
    /// get a partition of their own, like a Lambda container, so one test's
    /// faults do not spend another's quota.
    pub fn clients(&self, sdk: &SdkConfig, attempts: &Attempts) -> Clients {
        static PARTITIONS: AtomicU64 = AtomicU64::new(0);
        let n = PARTITIONS.fetch_add(1, Ordering::Relaxed);
        let partition = |service: &str| {
            aws_sdk_dynamodb::config::retry::RetryPartition::new(format!(
                "{service}-fault-proxy-{}-{n}",
                self.addr.port()
            ))
        };
        let url = self.url();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .endpoint_url(&url)
                    .retry_partition(partition("dynamodb"))
                    .interceptor(attempts.clone())
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(sdk)
                    .endpoint_url(&url)
                    .retry_partition(partition("kms"))
                    .interceptor(attempts.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .endpoint_url(&url)
                    .retry_partition(partition("sqs"))
                    .interceptor(attempts.clone())
                    .build(),
            ),
            s3: None,
        }
    }
}

impl From<FaultPlan> for Installed {
    fn from(plan: FaultPlan) -> Self {
        Installed {
            rng: SeededRng::new(plan.seed),
            injected: vec![0; plan.rules.len()],
            plan,
            started: Instant::now(),
            buckets: HashMap::new(),
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request).await }
            });
            // A dropped connection ends here with the service's error: intended.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, request: hyper::Request<Incoming>) -> Result<Response, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
    let service = Service::of(prefix);
    let operation = operation.to_owned();
    {
        let mut stats = lock(&shared.stats);
        stats.requests += 1;
        *stats.operations.entry(format!("{}.{operation}", service.name())).or_default() += 1;
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (delay, decision) = decide(shared, service, &operation, &json);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let forward = |parts: http::request::Parts, body: Bytes| async move {
        match forward(&shared.upstream, parts, body).await {
            Ok(response) => {
                lock(&shared.stats).forwarded += 1;
                response
            }
            Err(error) => {
                tracing::warn!(%error, "fault proxy: emulator unreachable");
                lock(&shared.stats).upstream_errors += 1;
                aws_error(service, 502, "BadGateway", "the emulator could not be reached", None)
            }
        }
    };
    match decision {
        Decision::Forward => Ok(forward(parts, body).await),
        Decision::Answer(_, response) => Ok(response),
        Decision::DropBefore => Err(Dropped),
        Decision::DropAfter => {
            forward(parts, body).await;
            Err(Dropped)
        }
    }
}

/// Draws the latency and the fault of one request, and applies the hot-item
/// limit to what would be forwarded.
fn decide(shared: &Shared, service: Service, operation: &str, body: &Value) -> (Option<Duration>, Decision) {
    let mut installed = lock(&shared.installed);
    let Installed { plan, rng, injected, started, buckets } = &mut *installed;
    let delay = plan.latency.filter(|l| rng.chance(l.rate)).map(|l| {
        let (min, max) = (l.min.as_millis() as i64, l.max.as_millis().max(l.min.as_millis()) as i64);
        Duration::from_millis(rng.between(min, max) as u64)
    });
    let mut chosen = None;
    let mut in_outage = false;
    if let Some(outage) = &plan.outage {
        let elapsed = started.elapsed().as_millis();
        let every = outage.every.as_millis().max(1);
        if elapsed % every < outage.lasting.as_millis()
            && outage.scope.matches(service, operation)
            && outage.fault.possible(service, operation)
        {
            chosen = Some(outage.fault);
            in_outage = true;
        }
    }
    if chosen.is_none() {
        let draw = rng.unit();
        let mut cumulative = 0.0;
        for (i, rule) in plan.rules.iter().enumerate() {
            let exhausted = rule.limit.is_some_and(|limit| injected[i] >= limit);
            if exhausted
                || !rule.scope.matches(service, operation)
                || !rule.fault.possible(service, operation)
            {
                continue;
            }
            cumulative += rule.rate;
            if draw < cumulative {
                injected[i] += 1;
                chosen = Some(rule.fault);
                break;
            }
        }
    }
    let hot_check = |buckets: &mut HashMap<String, Bucket>, rng: &mut SeededRng| {
        hot_item_check(plan.hot_items.as_ref(), buckets, service, operation, body, rng)
    };
    let (decision, hot) = match chosen {
        Some(Fault::DropBeforeForward) => (Decision::DropBefore, false),
        Some(Fault::DropAfterForward) => match hot_check(buckets, rng) {
            Some((fault, response)) => (Decision::Answer(fault, response), true),
            None => (Decision::DropAfter, false),
        },
        Some(fault) => (Decision::Answer(fault, fault_response(fault, service, body, rng)), false),
        None => match hot_check(buckets, rng) {
            Some((fault, response)) => (Decision::Answer(fault, response), true),
            None => (Decision::Forward, false),
        },
    };
    drop(installed);
    let mut stats = lock(&shared.stats);
    if let Some(delay) = delay {
        stats.delayed += 1;
        stats.delay_total += delay;
    }
    let injected = match &decision {
        Decision::Answer(fault, _) => Some(*fault),
        Decision::DropBefore => Some(Fault::DropBeforeForward),
        Decision::DropAfter => Some(Fault::DropAfterForward),
        Decision::Forward => None,
    };
    match injected {
        Some(_) if hot => stats.hot_item_throttles += 1,
        Some(fault) => {
            *stats.faults.entry(fault).or_default() += 1;
            if in_outage {
                stats.outage_faults += 1;
            }
        }
        None => {}
    }
    (delay, decision)
}

/// The answer of a fault that answers (all but the drops).
fn fault_response(fault: Fault, service: Service, body: &Value, rng: &mut SeededRng) -> Response {
    match fault {
        Fault::ThroughputExceeded => aws_error(
            service,
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
            None,
        ),
        Fault::Throttling => aws_error(
            service,
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
            None,
        ),
        Fault::TransactionConflict => {
            let actions = body.get("TransactItems").and_then(Value::as_array).map_or(1, Vec::len).max(1);
            let conflicting = rng.below(actions as u64) as usize;
            let codes: Vec<&str> =
                (0..actions).map(|i| if i == conflicting { "TransactionConflict" } else { "None" }).collect();
            transaction_cancelled(&codes)
        }
        Fault::InternalError => {
            let code = if service == Service::DynamoDb { "InternalServerError" } else { "InternalFailure" };
            aws_error(service, 500, code, "We encountered an internal error. Please try again.", None)
        }
        Fault::Unavailable => aws_error(service, 503, "ServiceUnavailable", "Service is unavailable.", None),
        Fault::DropBeforeForward | Fault::DropAfterForward => {
            aws_error(service, 500, "InternalFailure", "a drop has no answer", None)
        }
    }
}

/// `TransactionCanceledException` with these reason codes, one per action.
fn transaction_cancelled(codes: &[&str]) -> Response {
    let reasons: Vec<Value> = codes
        .iter()
        .map(|code| match *code {
            "None" => json!({ "Code": "None" }),
            "TransactionConflict" => json!({
                "Code": "TransactionConflict",
                "Message": "Transaction is ongoing for the item"
            }),
            "ThrottlingError" => json!({
                "Code": "ThrottlingError",
                "Message": "Throughput exceeds the current capacity for your table or index."
            }),
            other => json!({ "Code": other }),
        })
        .collect();
    let message = format!(
        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
        codes.join(", ")
    );
    aws_error(
        Service::DynamoDb,
        400,
        "TransactionCanceledException",
        &message,
        Some(("CancellationReasons", Value::Array(reasons))),
    )
}

/// An AWS JSON protocol error, as the SDK parses it (`__type` and `message`).
fn aws_error(
    service: Service,
    status: u16,
    code: &str,
    message: &str,
    extra: Option<(&str, Value)>,
) -> Response {
    let type_name =
        if service == Service::DynamoDb { format!("{DYNAMODB_TYPE_PREFIX}{code}") } else { code.to_owned() };
    let mut body = json!({ "__type": type_name, "message": message });
    if let Some((name, value)) = extra {
        body[name] = value;
    }
    let content_type =
        if service == Service::Kms { "application/x-amz-json-1.1" } else { "application/x-amz-json-1.0" };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    if let Ok(id) = http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    if service == Service::Sqs
        && let Ok(value) = http::HeaderValue::from_str(&format!("{code};Receiver"))
    {
        headers.insert("x-amzn-query-error", value);
    }
    response
}

/// One written item of a request: its bucket key, its cost, and its action
/// index inside a transaction.
struct Written {
    key: String,
    units: f64,
    action: Option<usize>,
}

/// The items a DynamoDB write names.
fn written_items(limit: &HotItemLimit, operation: &str, body: &Value) -> Vec<Written> {
    let key_of = |table: &str, item: &Value| -> Option<String> {
        let text = |name: &str| {
            item.get(name).and_then(Value::as_object).and_then(|v| v.values().next()).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let pk = text(&limit.key_attributes.0)?;
        Some(match limit.key {
            HotKey::Partition => format!("{table}/{pk}"),
            HotKey::Item => format!("{table}/{pk}/{}", text(&limit.key_attributes.1).unwrap_or_default()),
        })
    };
    let size_units = |item: &Value| ((item.to_string().len() as f64) / 1024.0).ceil().max(1.0);
    let table = body.get("TableName").and_then(Value::as_str).unwrap_or_default();
    let mut out = Vec::new();
    match operation {
        "PutItem" => {
            if let Some(item) = body.get("Item")
                && let Some(key) = key_of(table, item)
            {
                out.push(Written { key, units: size_units(item), action: None });
            }
        }
        "UpdateItem" | "DeleteItem" => {
            if let Some(key) = body.get("Key").and_then(|k| key_of(table, k)) {
                out.push(Written { key, units: 1.0, action: None });
            }
        }
        "BatchWriteItem" => {
            for (table, requests) in body.get("RequestItems").and_then(Value::as_object).into_iter().flatten()
            {
                for request in requests.as_array().into_iter().flatten() {
                    let put = request.pointer("/PutRequest/Item");
                    let delete = request.pointer("/DeleteRequest/Key");
                    if let Some(item) = put.or(delete)
                        && let Some(key) = key_of(table, item)
                    {
                        let units = if put.is_some() { size_units(item) } else { 1.0 };
                        out.push(Written { key, units, action: None });
                    }
                }
            }
        }
        "TransactWriteItems" => {
            for (i, action) in
                body.get("TransactItems").and_then(Value::as_array).into_iter().flatten().enumerate()
            {
                let Some((kind, op)) = action.as_object().and_then(|o| o.iter().next()) else { continue };
                let table = op.get("TableName").and_then(Value::as_str).unwrap_or_default();
                let (item, units) = match kind.as_str() {
                    "Put" => match op.get("Item") {
                        Some(item) => (item, size_units(item)),
                        None => continue,
                    },
                    _ => match op.get("Key") {
                        Some(key) => (key, 1.0),
                        None => continue,
                    },
                };
                if let Some(key) = key_of(table, item) {
                    out.push(Written { key, units: units * 2.0, action: Some(i) });
                }
            }
        }
        _ => {}
    }
    if let Some(needle) = &limit.only_keys_containing {
        out.retain(|w| w.key.contains(needle.as_str()));
    }
    out
}

/// Applies the hot-item limit to a write about to be forwarded: `Some` answer
/// when an item's bucket lacks the units (nothing consumed), otherwise the
/// units are taken and `None`.
fn hot_item_check(
    limit: Option<&HotItemLimit>,
    buckets: &mut HashMap<String, Bucket>,
    service: Service,
    operation: &str,
    body: &Value,
    rng: &mut SeededRng,
) -> Option<(Fault, Response)> {
    let limit = limit?;
    if service != Service::DynamoDb {
        return None;
    }
    let written = written_items(limit, operation, body);
    if written.is_empty() {
        return None;
    }
    let now = Instant::now();
    let mut needed: HashMap<&str, f64> = HashMap::new();
    for w in &written {
        *needed.entry(w.key.as_str()).or_default() += w.units;
    }
    let mut throttled: Vec<&str> = Vec::new();
    for (key, units) in &needed {
        let bucket = buckets.entry((*key).to_owned()).or_insert_with(|| Bucket {
            tokens: limit.burst_units,
            at: now,
            stats: HotItem { key: (*key).to_owned(), ..HotItem::default() },
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * limit.units_per_second;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst_units);
        bucket.at = now;
        if bucket.tokens < *units {
            throttled.push(key);
        }
    }
    if throttled.is_empty() {
        for (key, units) in &needed {
            if let Some(bucket) = buckets.get_mut(*key) {
                bucket.tokens -= units;
                bucket.stats.writes += 1;
                bucket.stats.units += units;
            }
        }
        return None;
    }
    for key in &throttled {
        if let Some(bucket) = buckets.get_mut(*key) {
            bucket.stats.throttled += 1;
        }
    }
    if operation == "TransactWriteItems" {
        let actions = body.get("TransactItems").and_then(Value::as_array).map_or(0, Vec::len);
        let mut codes = vec!["None"; actions];
        for w in written.iter().filter(|w| throttled.contains(&w.key.as_str())) {
            if let Some(code) = w.action.and_then(|i| codes.get_mut(i)) {
                *code = "ThrottlingError";
            }
        }
        return Some((Fault::Throttling, transaction_cancelled(&codes)));
    }
    let fault = limit.single_item_answer;
    Some((fault, fault_response(fault, service, body, rng)))
}

/// Forwards one request on a fresh connection and reads the whole answer.
async fn forward(upstream: &str, parts: http::request::Parts, body: Bytes) -> Result<Response, BoxError> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in &parts.headers {
        if name != http::header::CONNECTION && name != http::header::TRANSFER_ENCODING {
            builder = builder.header(name, value);
        }
    }
    let response = sender.send_request(builder.body(Full::new(body))?).await;
    let result = match response {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            match body.collect().await {
                Ok(collected) => {
                    parts.headers.remove(http::header::TRANSFER_ENCODING);
                    parts.headers.remove(http::header::CONNECTION);
                    Ok(hyper::Response::from_parts(parts, Full::new(collected.to_bytes())))
                }
                Err(error) => Err(error.into()),
            }
        }
        Err(error) => Err(error.into()),
    };
    driver.abort();
    result
}

/// Counts, on a client, SDK operations (one per `send`), attempts on the wire
/// (so retries = attempts - operations), and how operations that failed
/// ended: given up after the SDK's retries (transport, HTTP 5xx, throttling)
/// or answered with a service error the SDK does not retry (a failed
/// condition, a cancelled transaction).
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<AttemptCounts>);

#[derive(Debug, Default)]
struct AttemptCounts {
    operations: AtomicU64,
    attempts: AtomicU64,
    transport: AtomicU64,
    server_error: AtomicU64,
    throttled: AtomicU64,
    service_error: AtomicU64,
}

impl Attempts {
    pub fn operations(&self) -> u64 {
        self.0.operations.load(Ordering::Relaxed)
    }

    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.attempts().saturating_sub(self.operations())
    }

    /// Operations given up after the SDK's retries: no answer (connection
    /// lost, timeout), HTTP 5xx, throttling.
    pub fn gave_up(&self) -> (u64, u64, u64) {
        let c = &self.0;
        (
            c.transport.load(Ordering::Relaxed),
            c.server_error.load(Ordering::Relaxed),
            c.throttled.load(Ordering::Relaxed),
        )
    }

    /// Operations answered with an error the SDK does not retry (conditions,
    /// cancelled transactions other than throttling).
    pub fn service_errors(&self) -> u64 {
        self.0.service_error.load(Ordering::Relaxed)
    }
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "Attempts"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.operations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !matches!(context.output_or_error(), Some(Err(_))) {
            return Ok(());
        }
        let counter = match context.response() {
            None => &self.0.transport,
            Some(response) if response.status().is_server_error() => &self.0.server_error,
            Some(response) => {
                let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                if body.contains("Throttl") || body.contains("ProvisionedThroughputExceeded") {
                    &self.0.throttled
                } else {
                    &self.0.service_error
                }
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
