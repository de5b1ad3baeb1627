//! Job throughput against the emulator: outbox-drain over stream batches of
//! the template's batch size, audit-writer over SQS batches of 10, for one
//! tenant and for ten tenants at once (one FIFO message group each, so Lambda
//! runs them in parallel).

use crate::bench::Bench;
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
        let response = bench
            .call_cheap(
                "RegisterFunction",
                &register_call(TENANT, &format!("drain-{run_id}-{i}@example.com")),
            )
            .await?;
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
            return Err(BenchError::Setup(format!(
                "outbox-drain failed {} records",
                response.batch_item_failures.len()
            )));
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
                    return Err(BenchError::Setup(format!(
                        "audit-writer failed {} messages",
                        response.batch_item_failures.len()
                    )));
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
    Ok(Audit {
        label: label.to_owned(),
        tenants,
        entries: tenants * per_tenant,
        wall,
        cpu,
        dynamodb_calls,
        chains_verified,
    })
}

pub struct Migration {
    pub segments: u32,
    pub items: usize,
    pub seed: Duration,
    pub wall: Duration,
    pub cpu: Duration,
    pub invocations: usize,
    pub failed_deliveries: usize,
    pub outcome: String,
}

/// A v1 user item, the shape the auth code writes (as in tests/migrate.rs).
fn user_item(tenant: &str, i: usize) -> caas::store::Item {
    use aws_sdk_dynamodb::types::AttributeValue;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let email = format!("user{i:07}@example.com");
    let user_id = format!("0190aaaa-0000-7000-8000-{i:012}");
    let ms = 1_700_000_000_000i64 + i64::try_from(i).unwrap_or(0) * 60_000;
    let created = caas::migrate::definitions::format_ms(ms).unwrap_or_default();
    let hash = if i.is_multiple_of(3) {
        "$2b$10$abcdefghijklmnopqrstuu5i2bYwbLhP7T2Ux3tY0d5oBm6J3Yv2"
    } else {
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
    };
    caas::store::Item::from([
        ("pk".into(), s(&format!("T#{tenant}#USER#{email}"))),
        ("sk".into(), s("USER")),
        ("kind".into(), s("user")),
        ("gsi1pk".into(), s(&format!("T#{tenant}#USERID#{user_id}"))),
        ("gsi1sk".into(), s("USER")),
        ("schema_version".into(), AttributeValue::N("1".into())),
        ("tenant_id".into(), s(tenant)),
        ("user_id".into(), s(&user_id)),
        ("email".into(), s(&email)),
        ("password_hash".into(), s(hash)),
        ("created_at".into(), s(&created)),
        ("failed_logins".into(), AttributeValue::N("0".into())),
    ])
}

async fn seed_users(bench: &Bench, tenant: &str, count: usize) -> Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use futures::StreamExt;
    let table = bench.stack.table();
    let dynamodb = aws_sdk_dynamodb::Client::new(&bench.stack.sdk);
    let batches: Vec<Vec<usize>> = (0..count).collect::<Vec<_>>().chunks(25).map(<[usize]>::to_vec).collect();
    let writes = batches.into_iter().map(|batch| {
        let (dynamodb, table) = (dynamodb.clone(), table.clone());
        async move {
            let mut pending = Vec::new();
            for i in batch {
                let put = PutRequest::builder()
                    .set_item(Some(user_item(tenant, i)))
                    .build()
                    .map_err(|e| BenchError::Setup(format!("seed item: {e}")))?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            while !pending.is_empty() {
                let output =
                    dynamodb.batch_write_item().request_items(&table, pending).send().await.map_err(|e| {
                        BenchError::Setup(format!(
                            "seed: {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(e)
                        ))
                    })?;
                pending = output.unprocessed_items.and_then(|mut u| u.remove(&table)).unwrap_or_default();
            }
            Ok::<(), BenchError>(())
        }
    });
    let results: Vec<Result<()>> = futures::stream::iter(writes).buffer_unordered(8).collect().await;
    results.into_iter().collect()
}

fn migrate_event<T>(payload: T, timeout: Duration) -> lambda_runtime::LambdaEvent<T> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    context.deadline = u64::try_from((now + timeout).as_millis()).unwrap_or(u64::MAX);
    lambda_runtime::LambdaEvent::new(payload, context)
}

/// Seeds `items` v1 users on a fresh stack, starts `up` to the latest
/// version with `segments` segments and delivers the jobs queue the way
/// Lambda's SQS trigger does (batch size 1, every visible message at once)
/// until it is empty.
pub async fn migrate(items: usize, segments: u32) -> Result<Migration> {
    use caas::migrate::Command;
    use migrate::{Input, Output};
    let bench = Bench::new().await?;
    let seed_start = Instant::now();
    seed_users(&bench, "migrate", items).await?;
    let seed = seed_start.elapsed();
    let app = bench.app("MigrateFunction", Cost::Template, false)?;
    let timeout = bench
        .stack
        .template
        .functions()
        .into_iter()
        .find(|f| f.logical_id == "MigrateFunction")
        .map_or(Duration::from_secs(900), |f| Duration::from_secs(f.timeout_seconds));
    let queue = caas_tests::triggers::QueueTrigger::new(&bench.stack, "JobsQueue");
    let (c0, w0) = (process_cpu(), Instant::now());
    let command = Input::Command(Command::Up { to: None, segments: Some(segments), dry_run: false });
    migrate::handler(&app, migrate_event(command, timeout))
        .await
        .map_err(|e| BenchError::Handler("MigrateFunction".into(), e.to_string()))?;
    let (mut invocations, mut failed_deliveries) = (0, 0);
    loop {
        let mut messages = Vec::new();
        loop {
            let batch = queue.receive(10).await;
            if batch.records.is_empty() {
                break;
            }
            messages.extend(batch.records);
        }
        if messages.is_empty() {
            break;
        }
        invocations += messages.len();
        let runs = messages.into_iter().map(|message| {
            let (app, queue) = (app.clone(), &queue);
            async move {
                let event = sqs_event(vec![message]);
                let response =
                    match migrate::handler(&app, migrate_event(Input::Jobs(event.clone()), timeout)).await {
                        Ok(Output::Batch(response)) => response,
                        Ok(Output::Report(_)) => {
                            return Err(BenchError::Setup("a segment job answered with a report".into()));
                        }
                        Err(e) => return Err(BenchError::Handler("MigrateFunction".into(), e.to_string())),
                    };
                queue.settle(&event, &response).await;
                Ok(response.batch_item_failures.len())
            }
        });
        for result in futures::future::join_all(runs).await {
            failed_deliveries += result?;
        }
    }
    let (wall, cpu) = (w0.elapsed(), process_cpu().saturating_sub(c0));
    let status = match migrate::handler(&app, migrate_event(Input::Command(Command::Status), timeout)).await {
        Ok(Output::Report(report)) => report,
        _ => serde_json::Value::Null,
    };
    let last = status["history"].as_array().and_then(|h| h.last()).cloned().unwrap_or_default();
    let outcome = format!(
        "{}, v{} → v{}, {} items changed",
        last["status"].as_str().unwrap_or("unknown"),
        last["from_version"],
        last["to_version"],
        last["items_changed"]
    );
    Ok(Migration { segments, items, seed, wall, cpu, invocations, failed_deliveries, outcome })
}
