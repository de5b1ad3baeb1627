//! The bench's stack: one copy of template.yaml's resources on the emulator
//! (the tests' `TestStack`), apps configured exactly as template.yaml
//! configures each function (production Argon2 cost unless asked for the
//! cheap one), with a system clock, and a fixture of data the requests need.

use crate::error::{BenchError, Result};
use crate::http::{Call, dispatch, expect, field};
use crate::recorder::{Recorder, StreamLog};
use caas::App;
use caas::clients::Clients;
use caas::config::Config;
use caas_tests::{CHEAP_ARGON2, TestStack};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const PASSWORD: &str = "correct horse battery staple";
pub const TENANT: &str = "bench";
/// Every rate limit's variable (caas::ratelimit::RateLimits).
const RATE_LIMITS: [&str; 6] = [
    "RATE_LIMIT_LOGIN_IP",
    "RATE_LIMIT_REGISTER_IP",
    "RATE_LIMIT_REFRESH_IP",
    "RATE_LIMIT_MFA_IP",
    "RATE_LIMIT_TOKEN_IP",
    "RATE_LIMIT_WRITES",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cost {
    /// Argon2 as template.yaml configures it (the production parameters).
    Template,
    /// The tests' cheap Argon2, for setup work that is not measured.
    Cheap,
}

pub struct Bench {
    pub stack: TestStack,
    apps: Mutex<HashMap<(String, Cost, bool), Arc<App>>>,
    /// The bodies of every request of the counted apps, and their answers.
    pub recorder: Recorder,
    /// Every change to the table, from its stream.
    pub stream: StreamLog,
    /// Clients that count and record every request.
    recorded: Clients,
}

impl Bench {
    pub async fn new() -> Result<Self> {
        let stack = TestStack::new().await;
        let recorder = Recorder::default();
        let table = stack.table();
        let arn = stack
            .stack
            .resources
            .values()
            .find_map(|r| r.stream_arn.clone())
            .ok_or_else(|| BenchError::Setup(format!("the table {table} has no stream")))?;
        let stream = StreamLog::new(&stack.sdk, &arn);
        let recorded = caas_tests::iam::handler_clients(&stack.sdk, &stack.round_trips, recorder.clone());
        Ok(Self { stack, apps: Mutex::new(HashMap::new()), recorder, stream, recorded })
    }

    /// Forgets what was counted, recorded and streamed so far: what comes
    /// after is the next operation's.
    pub async fn reset(&self) -> Result<()> {
        self.stream.changes().await.map_err(BenchError::Setup)?;
        self.stack.round_trips.reset();
        self.recorder.reset();
        Ok(())
    }

    /// The environment template.yaml gives `function` on this stack.
    pub fn env(&self, function: &str, cost: Cost) -> Result<BTreeMap<String, String>> {
        let mut env = self
            .stack
            .stack
            .function_env(&self.stack.template, function, &BTreeMap::new())
            .map_err(|e| BenchError::Setup(format!("environment of {function}: {e}")))?;
        // One load generator sends every request from one address and one
        // principal: the per-address and per-principal limits would refuse it.
        // A limit's value changes no call (its counter rides in the same
        // transaction either way), so the counts stay those of production.
        for name in RATE_LIMITS {
            env.insert(name.to_owned(), "1000000/60".to_owned());
        }
        if cost == Cost::Cheap {
            for (name, value) in CHEAP_ARGON2 {
                env.insert(name.to_owned(), value.to_owned());
            }
        }
        Ok(env)
    }

    /// A warm app of `function`; `counted` apps share the stack's round-trip
    /// counter and the bench's recorder.
    pub fn app(&self, function: &str, cost: Cost, counted: bool) -> Result<Arc<App>> {
        let key = (function.to_owned(), cost, counted);
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(app) = apps.get(&key) {
            return Ok(app.clone());
        }
        let env = self.env(function, cost)?;
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .map_err(|e| BenchError::Setup(format!("config of {function}: {e}")))?;
        let clients = if counted { self.recorded.clone() } else { Clients::from_sdk_config(&self.stack.sdk) };
        let app = Arc::new(App::new(config, clients));
        apps.insert(key, app.clone());
        Ok(app)
    }

    /// The DynamoDB client of the counted apps (counted and recorded).
    pub fn recorded_dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.recorded.dynamodb
    }

    /// The item `pk|sk` as it is now (strongly consistent, uncounted), in DynamoDB JSON.
    pub async fn item(&self, key: &str) -> Result<Option<serde_json::Map<String, Value>>> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let (pk, sk) = key.split_once('|').unwrap_or((key, ""));
        let output = Clients::from_sdk_config(&self.stack.sdk)
            .dynamodb
            .get_item()
            .table_name(self.stack.table())
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("read {key}: {e}")))?;
        Ok(output.item.map(|item| {
            let item: serde_dynamo::Item = item.into();
            serde_json::to_value(item).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
        }))
    }

    /// The table's global secondary indexes (their key attributes), as provisioned.
    pub async fn indexes(&self) -> Result<Vec<crate::capacity::Index>> {
        let output = self
            .stack
            .clients
            .dynamodb
            .describe_table()
            .table_name(self.stack.table())
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("describe table: {e}")))?;
        let table =
            output.table.unwrap_or_else(|| aws_sdk_dynamodb::types::TableDescription::builder().build());
        Ok(table
            .global_secondary_indexes()
            .iter()
            .map(|index| crate::capacity::Index {
                keys: index.key_schema().iter().map(|k| k.attribute_name().to_owned()).collect(),
            })
            .collect())
    }

    /// One request through `function` (production cost, uncounted clients).
    pub async fn call(&self, function: &str, call: &Call<'_>) -> Result<Response<Body>> {
        let app = self.app(function, Cost::Template, false)?;
        dispatch(&app, function, call.request()?).await
    }

    pub async fn call_cheap(&self, function: &str, call: &Call<'_>) -> Result<Response<Body>> {
        let app = self.app(function, Cost::Cheap, false)?;
        dispatch(&app, function, call.request()?).await
    }
}

pub fn register_call(tenant: &str, email: &str) -> Call<'static> {
    Call::new("POST", "/v1/users").json(&json!({ "tenant_id": tenant, "email": email, "password": PASSWORD }))
}

pub fn login_call(tenant: &str, email: &str) -> Call<'static> {
    Call::new("POST", "/v1/auth/login")
        .json(&json!({ "tenant_id": tenant, "email": email, "password": PASSWORD }))
}

pub fn refresh_call(route: &'static str, refresh_token: &str) -> Call<'static> {
    Call::new("POST", route).json(&json!({ "refresh_token": refresh_token }))
}

/// An account; an overdraft one (the fixture owner's funding) with a limit of 10^12.
pub fn create_account_call(token: &str, allow_overdraft: bool) -> Call<'static> {
    let mut body = json!({ "currency": "USD", "allow_overdraft": allow_overdraft, "name": "bench account" });
    if allow_overdraft {
        body["overdraft_limit"] = json!(1_000_000_000_000i64);
    }
    Call::new("POST", "/v1/accounts").bearer(token).idempotency_key().json(&body)
}

pub fn create_payment_call(token: &str, payer: &str, payee: &str, amount: i64) -> Call<'static> {
    Call::new("POST", "/v1/payments").bearer(token).idempotency_key().json(
        &json!({ "amount": amount, "currency": "USD", "payer_account_id": payer, "payee_account_id": payee }),
    )
}

pub fn capture_call(token: &str, payment: &str) -> Call<'static> {
    Call::new("POST", "/v1/payments/{id}/capture")
        .id(payment)
        .bearer(token)
        .idempotency_key()
        .json(&json!({}))
}

pub fn void_call(token: &str, payment: &str) -> Call<'static> {
    Call::new("POST", "/v1/payments/{id}/void").id(payment).bearer(token).idempotency_key().json(&json!({}))
}

pub fn refund_call(token: &str, payment: &str, amount: i64) -> Call<'static> {
    Call::new("POST", "/v1/payments/{id}/refunds")
        .id(payment)
        .bearer(token)
        .idempotency_key()
        .json(&json!({ "amount": amount }))
}

/// The data every request of the bench runs against: its tenant, an owner of it (invited by
/// the operator, so it may fund from an overdraft account and read the audit chain)
/// registered at the template's Argon2 cost, its access token, a funded payer and a payee.
pub struct Fixture {
    pub email: String,
    pub token: String,
    pub payer: String,
    pub payee: String,
}

impl Fixture {
    pub async fn new(bench: &Bench) -> Result<Self> {
        // The operator's step: the bench's tenant, open to signup.
        caas_tests::open_tenant(&bench.stack, TENANT).await;
        let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
        let operator = bench.stack.app("TenantsFunction");
        let setup = caas_tests::SETUP_CORRELATION_ID;
        let invitation =
            caas::access::tenants::invite(&operator, setup, TENANT, &email, caas::auth::Role::Owner)
                .await
                .map_err(|e| crate::error::BenchError::Setup(format!("invite the fixture's owner: {e}")))?;
        let registration = Call::new("POST", "/v1/users").json(
            &json!({ "tenant_id": TENANT, "email": email, "password": PASSWORD, "invitation": invitation.token }),
        );
        expect("RegisterFunction", &bench.call("RegisterFunction", &registration).await?, 201)?;
        let token = fixture_login(bench, &email).await?;
        let payer = account(bench, &token, false).await?;
        let payee = account(bench, &token, false).await?;
        let funding = account(bench, &token, true).await?;
        let payment = payment(bench, &token, &funding, &payer, 1_000_000_000_000).await?;
        expect(
            "CapturePaymentFunction",
            &bench.call("CapturePaymentFunction", &capture_call(&token, &payment)).await?,
            200,
        )?;
        Ok(Self { email, token, payer, payee })
    }

    /// A fresh login of the fixture user: (access token, refresh token).
    pub async fn login(&self, bench: &Bench) -> Result<(String, String)> {
        let body = expect(
            "LoginFunction",
            &bench.call("LoginFunction", &login_call(TENANT, &self.email)).await?,
            200,
        )?;
        Ok((field(&body, "access_token")?, field(&body, "refresh_token")?))
    }

    /// An authorized payment from the payer to the payee.
    pub async fn payment(&self, bench: &Bench, amount: i64) -> Result<String> {
        payment(bench, &self.token, &self.payer, &self.payee, amount).await
    }
}

async fn fixture_login(bench: &Bench, email: &str) -> Result<String> {
    let body = expect("LoginFunction", &bench.call("LoginFunction", &login_call(TENANT, email)).await?, 200)?;
    field(&body, "access_token")
}

pub async fn account(bench: &Bench, token: &str, allow_overdraft: bool) -> Result<String> {
    let response = bench.call("CreateAccountFunction", &create_account_call(token, allow_overdraft)).await?;
    field(&expect("CreateAccountFunction", &response, 201)?, "account_id")
}

pub async fn payment(bench: &Bench, token: &str, payer: &str, payee: &str, amount: i64) -> Result<String> {
    let response =
        bench.call("CreatePaymentFunction", &create_payment_call(token, payer, payee, amount)).await?;
    field(&expect("CreatePaymentFunction", &response, 201)?, "payment_id")
}

/// Synthetic outbox events of `tenant`, as SQS messages the way the drain sends them.
pub fn audit_messages(tenant: &str, count: usize) -> Result<Vec<aws_lambda_events::event::sqs::SqsMessage>> {
    let tenant_id = caas::tenant::TenantId::parse(tenant)
        .map_err(|e| BenchError::Setup(format!("tenant {tenant}: {e}")))?;
    (0..count)
        .map(|n| {
            let event = caas::outbox::OutboxEvent::new(
                &tenant_id,
                "user",
                &format!("user-{n}"),
                "user.login_succeeded",
                time::OffsetDateTime::now_utc(),
                "bench",
                json!({ "n": n, "user_id": format!("user-{n}") }),
            );
            let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
            message.message_id = Some(uuid::Uuid::new_v4().to_string());
            message.body = Some(event.to_message_body().map_err(|e| BenchError::Setup(e.to_string()))?);
            message.attributes.insert("MessageGroupId".into(), event.tenant_id.clone());
            message.attributes.insert("MessageDeduplicationId".into(), event.event_id.clone());
            message.event_source = Some("aws:sqs".to_owned());
            message.aws_region = Some("us-east-1".to_owned());
            Ok(message)
        })
        .collect()
}

pub fn sqs_event(
    messages: Vec<aws_lambda_events::event::sqs::SqsMessage>,
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = messages;
    event
}

pub fn value_of<T: serde::Serialize>(value: &T) -> Result<Value> {
    Ok(serde_json::to_value(value)?)
}
