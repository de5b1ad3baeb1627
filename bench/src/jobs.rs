//! Job throughput against the emulator: outbox-drain over stream batches of
//! the template's batch size, audit-writer over SQS batches of 10, for one
//! tenant and for ten tenants at once (one FIFO message group each, so Lambda
//! runs them in parallel).

use crate::bench::*;
use crate::error::{BenchError, Result};
use crate::http::expect;
use crate::stats::process_cpu;
use caas_tests::triggers::{StreamTrigger, lambda_event};
use std::time::{Duration, Instant};

pub struct Drain {
    pub events: usize,
    pub batches: usize,
    pub wall: Duration,
    pub cpu: Duration,
    pub sqs_calls: usize,
    pub dynamodb_calls: usize,
}

pub struct Audit {
    pub label: String,
    pub tenants: usize,
    pub entries: usize,
    pub wall: Duration,
    pub cpu: Duration,
    pub dynamodb_calls: usize,
    pub chains_verified: bool,
}

pub async fn outbox_drain(bench: &Bench, events: usize) -> Result<Drain> {
    let stream = StreamTrigger::new(&bench.stack, "OutboxDrainFunction");
    let _ = stream.poll().await;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..events {
        let response = bench.call_cheap("RegisterFunction", &register_call(TENANT, &format!("drain-{run_id}-{i}@example.com"))).await?;
        expect("RegisterFunction", &response, 201)?;
    }
    let records = stream.poll().await;
    let app = bench.app("OutboxDrainFunction", Cost::Template, true)?;
    let counter = &bench.stack.round_trips;
    counter.reset();
    let (mut wall, mut cpu, mut batches) = (Duration::ZERO, Duration::ZERO, 0);
    let total = records.len();
    for batch in records.chunks(100) {
        let event = StreamTrigger::event(batch.to_vec());
        let (c0, w0) = (process_cpu(), Instant::now());
        let response = outbox_drain::handler(&app, event)
            .await
            .map_err(|e| BenchError::Handler("OutboxDrainFunction".into(), e.to_string()))?;
        wall += w0.elapsed();
        cpu += process_cpu().saturating_sub(c0);
        batches += 1;
        if !response.batch_item_failures.is_empty() {
            return Err(BenchError::Setup(format!("outbox-drain failed {} records", response.batch_item_failures.len())));
        }
    }
    let (sqs_calls, dynamodb_calls) = (counter.count("sqs"), counter.count("dynamodb"));
    counter.reset();
    Ok(Drain { events: total, batches, wall, cpu, sqs_calls, dynamodb_calls })
}

/// `tenants` tenants, `per_tenant` entries each, in SQS batches of 10; the
/// tenants run concurrently, each tenant's batches one after the other.
pub async fn audit_writer(bench: &Bench, label: &str, tenants: usize, per_tenant: usize) -> Result<Audit> {
    let app = bench.app("AuditWriterFunction", Cost::Template, true)?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let names: Vec<String> = (0..tenants).map(|t| format!("audit-{run_id}-{t}")).collect();
    let mut work = Vec::new();
    for name in &names {
        work.push(audit_messages(name, per_tenant)?);
    }
    let counter = &bench.stack.round_trips;
    counter.reset();
    let (c0, w0) = (process_cpu(), Instant::now());
    let results = futures::future::join_all(work.into_iter().map(|messages| {
        let app = app.clone();
        async move {
            for batch in messages.chunks(10) {
                let response = audit_writer::handler(&app, lambda_event(sqs_event(batch.to_vec())))
                    .await
                    .map_err(|e| BenchError::Handler("AuditWriterFunction".into(), e.to_string()))?;
                if !response.batch_item_failures.is_empty() {
                    return Err(BenchError::Setup(format!("audit-writer failed {} messages", response.batch_item_failures.len())));
                }
            }
            Ok(())
        }
    }))
    .await;
    let (wall, cpu) = (w0.elapsed(), process_cpu().saturating_sub(c0));
    let dynamodb_calls = counter.count("dynamodb");
    counter.reset();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let mut chains_verified = true;
    for name in &names {
        let tenant = caas::tenant::TenantId::parse(name).map_err(|e| BenchError::Setup(e.to_string()))?;
        let report = caas::audit::verify_chain(&app.clients.dynamodb, &app.config.table_name, &tenant)
            .await
            .map_err(|e| BenchError::Setup(format!("verify chain: {e}")))?;
        let json = serde_json::to_value(&report)?;
        chains_verified &= json["ok"] == serde_json::Value::Bool(true)
            && json["entries_checked"].as_u64() == u64::try_from(per_tenant).ok();
    }
    Ok(Audit { label: label.to_owned(), tenants, entries: tenants * per_tenant, wall, cpu, dynamodb_calls, chains_verified })
}
