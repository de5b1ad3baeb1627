//! Test support: a per-test stack provisioned from template.yaml on the
//! emulator, apps configured exactly as template.yaml configures each
//! function, a round-trip counter on every AWS client, a manual clock, log
//! and metric capture, and helpers to build API Gateway events.

pub mod api;
pub mod connections;
pub mod faults;
pub mod http_server;
pub mod iam;
pub mod running_stack;
pub mod triggers;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use caas::App;
use caas::clients::Clients;
use caas::clock::{Clock, ManualClock};
use caas::config::Config;
use caas_local::{Stack, Template};
use lambda_http::{Body, Request, Response};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Argon2 cost for tests that do not exercise hashing cost itself.
pub const CHEAP_ARGON2: [(&str, &str); 3] =
    [("ARGON2_MEMORY_KIB", "64"), ("ARGON2_ITERATIONS", "1"), ("ARGON2_PARALLELISM", "1")];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every test process logs through the production JSON subscriber into this
/// buffer (and stderr), so tests can assert on what would reach CloudWatch.
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every EMF document the process emitted, in order. The harness captures them
/// (they would reach CloudWatch through stdout) so they stay out of the test log.
pub fn captured_metrics() -> Vec<serde_json::Value> {
    let lines = metric_buffer().lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().map(|line| serde_json::from_str(line).expect("EMF lines are JSON")).collect()
}

fn metric_buffer() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        caas::telemetry::init_with_writer(|| CaptureWriter);
        caas::metrics::set_sink(|line| {
            metric_buffer().lock().unwrap_or_else(|p| p.into_inner()).push(line.to_owned());
        });
    });
}

/// Counts requests (attempts on the wire) per AWS service and operation.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips(Arc<Mutex<Vec<(String, String)>>>);

impl RoundTrips {
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// All calls since the last reset, as `(service, operation)`.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn count(&self, service: &str) -> usize {
        self.calls().iter().filter(|(s, _)| s.eq_ignore_ascii_case(service)).count()
    }

    pub fn operations(&self, service: &str) -> Vec<String> {
        self.calls().into_iter().filter(|(s, _)| s.eq_ignore_ascii_case(service)).map(|(_, op)| op).collect()
    }
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if is_presigned(context) {
            // Signed here and handed out: never sent.
            return Ok(());
        }
        let (service, operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_default();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((service, operation));
        Ok(())
    }
}

/// A presigned request (S3's presigned PUT and GET): its signature is in the
/// query, and the SDK stops before sending it.
pub fn is_presigned(context: &BeforeTransmitInterceptorContextRef<'_>) -> bool {
    context.request().uri().contains("X-Amz-Signature=")
}

pub async fn sdk_config() -> SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts the emulator"
    );
    // The production timeouts suit DynamoDB; the emulator serializes every
    // request and shares two cores with the build, so tests give it longer.
    caas::clients::load_sdk_config()
        .await
        .to_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .operation_timeout(std::time::Duration::from_secs(120))
                .build(),
        )
        .build()
}

/// Clients whose every request is counted.
pub fn counted_clients(sdk: &SdkConfig, counter: &RoundTrips) -> Clients {
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(counter.clone()).build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(sdk).interceptor(counter.clone()).build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk).interceptor(counter.clone()).build(),
        ),
        s3: Some(aws_sdk_s3::Client::from_conf(
            caas::clients::s3_config(sdk).interceptor(counter.clone()).build(),
        )),
    }
}

/// One test's own copy of the stack's resources.
pub struct TestStack {
    pub template: Template,
    pub stack: Stack,
    pub sdk: SdkConfig,
    pub round_trips: RoundTrips,
    pub clock: Arc<ManualClock>,
    pub clients: Clients,
}

impl TestStack {
    pub async fn new() -> Self {
        init_logging();
        let template = Template::load(repo_root().join("template.yaml")).expect("template.yaml parses");
        let sdk = sdk_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let stack = caas_local::provision(&template, &sdk, &suffix).await.expect("provision the template");
        let round_trips = RoundTrips::default();
        let clients = counted_clients(&sdk, &round_trips);
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        Self { template, stack, sdk, round_trips, clock, clients }
    }

    /// The environment template.yaml gives `function`, with `overrides` on top
    /// (cheap Argon2 unless the test passes the production cost explicitly).
    pub fn env(&self, function: &str, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = self
            .stack
            .function_env(&self.template, function, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("environment of {function}: {e}"));
        for (name, value) in CHEAP_ARGON2.iter().chain(overrides) {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        env
    }

    /// The app of `function` (a logical id of template.yaml), with cheap Argon2.
    pub fn app(&self, function: &str) -> App {
        self.app_with(function, &[])
    }

    pub fn app_with(&self, function: &str, overrides: &[(&str, &str)]) -> App {
        let env = self.env(function, overrides);
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("config of {function}: {e}"));
        // Counted like every client, and attributed to `function` (tests/iam.rs).
        let recorder = iam::CallRecorder::new(function, &self.stack);
        let clients = iam::handler_clients(&self.sdk, &self.round_trips, recorder);
        App::with_clock(config, clients, self.clock.clone())
    }

    /// An App of `function` whose AWS calls are not attributed to it
    /// (tests/iam.rs): for a configuration the template never deploys, such
    /// as one made to fail on purpose.
    pub fn unattributed_app_with(&self, function: &str, overrides: &[(&str, &str)]) -> App {
        let env = self.env(function, overrides);
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("config of {function}: {e}"));
        App::with_clock(config, self.clients.clone(), self.clock.clone())
    }

    /// The deliver function's API Gateway Management API client on
    /// `endpoint` (a test's stand-in for `@connections`), counted and
    /// attributed to `function` like every client of its App.
    pub fn connections_client(&self, function: &str, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        let env = self.env(function, &[("CONNECTIONS_ENDPOINT", endpoint)]);
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("config of {function}: {e}"));
        let recorder = iam::CallRecorder::new(function, &self.stack);
        let conf = caas::chat::delivery::connections_config(&config, &self.sdk)
            .unwrap_or_else(|e| panic!("{function}: {e}"))
            .interceptor(self.round_trips.clone())
            .interceptor(recorder)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(conf)
    }

    /// Moves the clock to the start of the next `window_seconds` window (the
    /// rate limits' fixed windows), so that a test's own advances do not
    /// cross a window boundary by chance.
    pub fn start_of_next_window(&self, window_seconds: i64) {
        let now = self.clock.now().unix_timestamp();
        self.clock.advance(time::Duration::seconds(window_seconds - now.rem_euclid(window_seconds)));
    }

    pub fn table(&self) -> String {
        self.stack.table_name().expect("the template declares a table").to_owned()
    }
}

/// An API Gateway HTTP API (payload v2) request, as Lambda delivers it.
pub fn api_request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Request {
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(*v))).collect();
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests" },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_564_800_000i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

/// `request` as sent from `ip` (API Gateway's `requestContext.http.sourceIp`).
pub fn from_source(mut request: Request, ip: &str) -> Request {
    use lambda_http::request::RequestContext;
    if let Some(RequestContext::ApiGatewayV2(context)) = request.extensions_mut().get_mut::<RequestContext>()
    {
        context.http.source_ip = Some(ip.to_owned());
    }
    request
}

pub fn json_request(method: &str, path: &str, body: &serde_json::Value) -> Request {
    api_request(method, path, &[("content-type", "application/json")], Some(&body.to_string()))
}

/// Loads `events/<name>.json`.
pub fn event_file(name: &str) -> String {
    let path = repo_root().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The verify job's ledger report: one tenant's, or (`None`) every tenant's.
pub async fn verify_ledger(stack: &TestStack, tenant: Option<&str>) -> caas::ledger::verify::LedgerReport {
    let payload = tenant.map_or_else(|| serde_json::json!({}), |t| serde_json::json!({ "tenant_id": t }));
    verify::handler(&stack.app("VerifyFunction"), invocation(payload)).await.expect("verify runs").ledger
}

/// The id of the payment a 201 answer created.
pub fn payment_id(response: &Response<Body>) -> String {
    let (status, body) = parts(response);
    assert_eq!(status, 201, "{body}");
    body["payment_id"].as_str().expect("payment id").to_owned()
}

/// A job's invocation as Lambda delivers it: the payload, a fresh request id.
pub fn invocation<T>(payload: T) -> lambda_runtime::LambdaEvent<T> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    lambda_runtime::LambdaEvent::new(payload, context)
}

/// The named check of a drill's or a restore's report.
pub fn report_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// Status and parsed JSON body (Null when empty).
pub fn parts(response: &Response<Body>) -> (u16, serde_json::Value) {
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).expect("JSON body")
    };
    (response.status().as_u16(), json)
}

pub fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts an error response is problem+json with this status.
pub fn assert_problem(response: &Response<Body>, status: u16) -> serde_json::Value {
    let (actual, body) = parts(response);
    assert_eq!(actual, status, "unexpected status, body: {body}");
    assert_eq!(header(response, "content-type"), Some("application/problem+json"));
    assert_eq!(body["status"], status);
    body
}

/// The correlation id of the operator steps tests make as setup
/// ([`open_tenant`]), so event assertions can tell them from the operations
/// under test.
pub const SETUP_CORRELATION_ID: &str = "test-setup";

/// Creates `tenant`, open to signup, through the tenants service (as the
/// operator would), so tests can register users in it; a tenant that exists
/// already is left as it is. Returns its first owner's invitation (for
/// `owner@<tenant>.example.com`) when it created the tenant.
pub async fn open_tenant(
    stack: &TestStack,
    tenant: &str,
) -> Option<caas::access::invitations::IssuedInvitation> {
    let app = stack.app("TenantsFunction");
    let owner = format!("owner@{tenant}.example.com");
    let open = caas::store::tenants::Signup::Open;
    match caas::access::tenants::create(&app, SETUP_CORRELATION_ID, tenant, tenant, open, &owner).await {
        Ok(created) => Some(created.owner_invitation),
        Err(caas::AppError::Conflict(_)) => None,
        Err(error) => panic!("create tenant {tenant}: {error}"),
    }
}

/// True for the events of [`open_tenant`].
pub fn is_setup(event: &caas::outbox::OutboxEvent) -> bool {
    event.correlation_id == SETUP_CORRELATION_ID
}

/// Every item of the table matching `filter` (values named in `values`),
/// all pages, strongly consistent, decoded as `T`.
pub async fn scan_items<T: serde::de::DeserializeOwned>(
    stack: &TestStack,
    filter: &str,
    values: &[(&str, &str)],
) -> Vec<T> {
    let items = scan_raw_items(stack, filter, values).await;
    items.into_iter().map(|item| serde_dynamo::from_item(item).expect("an item decodes")).collect()
}

/// Every item of the table matching `filter`, as DynamoDB answers it.
pub async fn scan_raw_items(
    stack: &TestStack,
    filter: &str,
    values: &[(&str, &str)],
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut scan = stack
            .clients
            .dynamodb
            .scan()
            .table_name(stack.table())
            .filter_expression(filter)
            .consistent_read(true);
        for (name, value) in values {
            scan = scan.expression_attribute_values(*name, AttributeValue::S((*value).to_owned()));
        }
        let page = scan.set_exclusive_start_key(start).send().await.expect("scan the table");
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Every outbox event stored for `tenant`, oldest first.
pub async fn stored_events(stack: &TestStack, tenant: &str) -> Vec<caas::outbox::OutboxEvent> {
    let filter = "kind = :outbox AND begins_with(pk, :tenant)";
    let prefix = format!("T#{tenant}#");
    let items = scan_raw_items(stack, filter, &[(":outbox", "outbox"), (":tenant", &prefix)]).await;
    // Decoded by the store: the item's key holds the tenant and event id.
    let mut events: Vec<caas::outbox::OutboxEvent> = items
        .into_iter()
        .map(|item| caas::store::outbox::event_from_image(item.into()).unwrap().expect("an outbox item"))
        .collect();
    events.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    events
}

/// An access token of a machine client of `tenant` with `role`, as the
/// client-credentials grant issues them (the client has no directory entry).
pub async fn client_token(stack: &TestStack, tenant: &str, role: caas::auth::Role) -> String {
    let principal = caas::auth::principal::Principal {
        kind: caas::auth::principal::PrincipalKind::Client,
        id: format!("client-{}", caas::ids::new_id()),
        tenant: caas::tenant::TenantId::parse(tenant).expect("a tenant id"),
        roles: vec![role],
    };
    let app = stack.app("LoginFunction");
    caas::auth::service::issue_access_token(&app, &principal).await.expect("a client token").0
}

/// One plain HTTP/1.1 request (no AWS SDK): what a browser or a `curl` does
/// with a presigned URL. `http://` URLs only (the emulator). Answers the
/// status, the response headers and the body.
pub async fn plain_http(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().expect("a URL");
    let authority = uri.authority().expect("a URL with a host").to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    let driver = tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", authority);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body))).expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body").to_bytes().to_vec();
    driver.abort();
    (parts.status.as_u16(), parts.headers, body)
}

/// The headers a presigned request (`{method, url, headers, expires_at}` as
/// the media routes answer it) must be sent with.
pub fn presigned_headers(presigned: &serde_json::Value) -> Vec<(String, String)> {
    presigned["headers"]
        .as_object()
        .expect("a presigned request's headers")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().expect("a header value").to_owned()))
        .collect()
}

/// Sends `body` with a presigned request as a browser would: its method,
/// URL and headers. Answers the status.
pub async fn send_presigned(presigned: &serde_json::Value, body: Vec<u8>) -> u16 {
    let method = presigned["method"].as_str().expect("a method");
    let url = presigned["url"].as_str().expect("a URL");
    plain_http(method, url, &presigned_headers(presigned), body).await.0
}
