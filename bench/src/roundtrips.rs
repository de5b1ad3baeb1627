//! Round trips per operation: every request the real handler sends to
//! DynamoDB, KMS and SQS, counted by the SDK interceptor the tests use
//! (`caas_tests::RoundTrips`, attempts on the wire) against the emulator.

use crate::accounting;
use crate::bench::*;
use crate::error::{BenchError, Result};
use crate::http::{dispatch, expect, field};
use crate::recorder::{Change, Exchange};
use caas_tests::triggers::{StreamTrigger, lambda_event};
use std::collections::{BTreeMap, HashMap};

pub struct Row {
    pub operation: String,
    /// The function (logical id) that ran it.
    pub function: String,
    /// Per service (lowercase): the operations in call order.
    pub calls: BTreeMap<String, Vec<String>>,
    pub per: usize,
    /// What was sent and answered, and what changed in the table.
    pub exchanges: Vec<Exchange>,
    pub changes: Vec<Change>,
    /// Items a write left unchanged, as read right after.
    pub current: HashMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl Row {
    pub fn count(&self, service: &str) -> usize {
        self.calls.get(service).map_or(0, Vec::len)
    }

    /// `n × Operation` groups for one service, in first-call order.
    pub fn describe(&self, service: &str) -> String {
        let Some(ops) = self.calls.get(service) else { return "0".to_owned() };
        let mut groups: Vec<(String, usize)> = Vec::new();
        for op in ops {
            match groups.iter_mut().find(|(name, _)| name == op) {
                Some((_, n)) => *n += 1,
                None => groups.push((op.clone(), 1)),
            }
        }
        let parts: Vec<String> =
            groups.into_iter().map(|(op, n)| if n == 1 { op } else { format!("{n}× {op}") }).collect();
        format!("{} ({})", ops.len(), parts.join(", "))
    }
}

/// What the operation just run sent and changed.
pub async fn take(bench: &Bench, function: &str, operation: &str, per: usize) -> Result<Row> {
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (service, op) in bench.stack.round_trips.calls() {
        calls.entry(service.to_ascii_lowercase()).or_default().push(op);
    }
    let exchanges = bench.recorder.exchanges();
    let changes = bench.stream.changes().await.map_err(BenchError::Setup)?;
    let mut current = HashMap::new();
    for key in accounting::unchanged_keys(&exchanges, &changes) {
        if let Some(item) = bench.item(&key).await? {
            current.insert(key, item);
        }
    }
    Ok(Row {
        operation: operation.to_owned(),
        function: function.to_owned(),
        calls,
        per,
        exchanges,
        changes,
        current,
    })
}

pub async fn measure(bench: &Bench, fixture: &Fixture) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let counted = |function: &str| bench.app(function, Cost::Template, true);
    // Warm containers: the token public key is fetched from KMS once per
    // container (GetPublicKey) and memoized, and so is the email lookup key
    // (GenerateMac); count what a warm one sends.
    for function in ["LoginFunction", "RefreshFunction", "CreatePaymentFunction", "CapturePaymentFunction"] {
        caas::auth::service::token_key(&*counted(function)?)
            .await
            .map_err(|e| BenchError::Setup(format!("token key of {function}: {e}")))?;
    }

    // The email lookup key likewise: one GenerateMac per container.
    caas::privacy::lookup::key(&*counted("LoginFunction")?)
        .await
        .map_err(|e| BenchError::Setup(format!("lookup key of LoginFunction: {e}")))?;

    // A login records its time to the second: one in the same second as the
    // fixture's login would change nothing in the user item (no index write).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    bench.reset().await?;
    let response =
        dispatch(&*counted("LoginFunction")?, "LoginFunction", login_call(TENANT, &fixture.email).request()?)
            .await?;
    rows.push(take(bench, "LoginFunction", "login (right password)", 1).await?);
    let refresh_token = field(&expect("LoginFunction", &response, 200)?, "refresh_token")?;

    bench.reset().await?;
    let response = dispatch(
        &*counted("RefreshFunction")?,
        "RefreshFunction",
        refresh_call("/v1/auth/refresh", &refresh_token).request()?,
    )
    .await?;
    rows.push(take(bench, "RefreshFunction", "refresh (rotation)", 1).await?);
    expect("RefreshFunction", &response, 200)?;

    bench.reset().await?;
    let call = create_payment_call(&fixture.token, &fixture.payer, &fixture.payee, 1);
    let response =
        dispatch(&*counted("CreatePaymentFunction")?, "CreatePaymentFunction", call.request()?).await?;
    rows.push(take(bench, "CreatePaymentFunction", "create-payment", 1).await?);
    let payment = field(&expect("CreatePaymentFunction", &response, 201)?, "payment_id")?;

    let capture = capture_call(&fixture.token, &payment);
    bench.reset().await?;
    let response =
        dispatch(&*counted("CapturePaymentFunction")?, "CapturePaymentFunction", capture.request()?).await?;
    rows.push(take(bench, "CapturePaymentFunction", "capture-payment, fresh", 1).await?);
    expect("CapturePaymentFunction", &response, 200)?;
    bench.reset().await?;
    let response =
        dispatch(&*counted("CapturePaymentFunction")?, "CapturePaymentFunction", capture.request()?).await?;
    rows.push(
        take(bench, "CapturePaymentFunction", "capture-payment, replayed (same Idempotency-Key)", 1).await?,
    );
    expect("CapturePaymentFunction", &response, 200)?;
    rows.push(crate::costs::powertools_capture(bench, fixture).await?);

    // outbox-drain: one stream batch of 100 new outbox items (100 registrations).
    let stream = StreamTrigger::new(&bench.stack, "OutboxDrainFunction");
    let _ = stream.poll().await;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..100 {
        let response = bench
            .call_cheap("RegisterFunction", &register_call(TENANT, &format!("rt-{run_id}-{i}@example.com")))
            .await?;
        expect("RegisterFunction", &response, 201)?;
    }
    let records = stream.poll().await;
    let events = records.len();
    bench.reset().await?;
    let drained = outbox_drain::handler(&*counted("OutboxDrainFunction")?, StreamTrigger::event(records))
        .await
        .map_err(|e| BenchError::Handler("OutboxDrainFunction".into(), e.to_string()))?;
    rows.push(
        take(
            bench,
            "OutboxDrainFunction",
            &format!("outbox-drain, one stream batch of {events} events"),
            events,
        )
        .await?,
    );
    if !drained.batch_item_failures.is_empty() {
        return Err(BenchError::Setup(format!(
            "outbox-drain failed {} records",
            drained.batch_item_failures.len()
        )));
    }

    // audit-writer: one SQS batch of 10 events of one tenant (one FIFO group).
    let messages = audit_messages("rt-audit", 10)?;
    bench.reset().await?;
    let written = audit_writer::handler(&*counted("AuditWriterFunction")?, lambda_event(sqs_event(messages)))
        .await
        .map_err(|e| BenchError::Handler("AuditWriterFunction".into(), e.to_string()))?;
    rows.push(
        take(bench, "AuditWriterFunction", "audit-writer, one SQS batch of 10 events (one tenant)", 10)
            .await?,
    );
    if !written.batch_item_failures.is_empty() {
        return Err(BenchError::Setup("audit-writer failed messages".into()));
    }
    bench.reset().await?;
    Ok(rows)
}
