//! Capacity units and dollars per operation: the request units of every item
//! each operation of the round-trip section wrote and read ([`accounting`]),
//! the KMS and SQS requests it sent, its Lambda invocation at the template's
//! memory size and the measured handler durations, and what its outbox events
//! cost downstream (the drain marks them, the audit writer appends them). A
//! capture built the Powertools way is measured beside ours.

use crate::accounting::{self, Access};
use crate::bench::{Bench, Cost, Fixture, capture_call};
use crate::capacity::{Index, read_units, write_units};
use crate::error::{BenchError, Result};
use crate::http::{dispatch, expect};
use crate::prices;
use crate::roundtrips::{Row, take};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

/// The longest tenant id `TenantId::parse` accepts.
pub const LONGEST_TENANT: usize = 64;

/// Handler CPU and wall time (ms, medians) per function, and where they come from.
#[derive(Debug, Clone, Default)]
pub struct Durations {
    pub by_function: BTreeMap<String, (f64, f64)>,
    /// outbox-drain and audit-writer: CPU per event (ms).
    pub drain_cpu_per_event: Option<f64>,
    pub audit_cpu_per_event: Option<f64>,
    /// Section 3: CPU medians (ms) of a verification with a fresh and with a reused block buffer.
    pub argon2_fresh_reused: Option<(f64, f64)>,
    /// Section 4: peak RSS (MiB, median) per function.
    pub peak_rss: BTreeMap<String, f64>,
    /// Section 6, one segment: migrate's CPU and wait (wall − CPU) per item (ms).
    pub migrate_per_item: Option<(f64, f64)>,
    /// Where `migrate_per_item` comes from.
    pub migrate_source: String,
    pub source: String,
}

fn cells(line: &str) -> Vec<&str> {
    line.trim().trim_matches('|').split('|').map(str::trim).collect()
}

impl Durations {
    /// The medians of sections 2 and 5 of a document the bench wrote.
    pub fn from_document(text: &str) -> Self {
        let mut durations = Durations::default();
        let mut section = "";
        let mut stamps = Vec::new();
        for line in text.lines() {
            if line.starts_with("## ") {
                section = line;
            }
            let in_cpu = section.starts_with("## 2.");
            let in_jobs = section.starts_with("## 5.");
            let in_migrate = section.starts_with("## 6.");
            if (in_cpu || in_jobs || in_migrate) && line.starts_with("*Measured") {
                let stamp = line.trim_matches('*').trim_end_matches('.');
                let stamp = format!("section {}: {}", &section[3..4], stamp.trim_start_matches("Measured "));
                if in_migrate {
                    durations.migrate_source = stamp;
                } else {
                    stamps.push(stamp);
                }
            }
            let row = cells(line);
            let number = |i: usize| row.get(i).and_then(|c| c.parse::<f64>().ok());
            let function = row.first().filter(|c| in_cpu && c.ends_with("Function"));
            if let (Some(function), Some(cpu), Some(wall)) = (function, number(3), number(6)) {
                durations.by_function.insert((*function).to_owned(), (cpu, wall));
            }
            if in_jobs && row.first().is_some_and(|c| c.starts_with("outbox-drain")) {
                durations.drain_cpu_per_event = number(4);
            }
            if in_jobs && row.first().is_some_and(|c| c.starts_with("audit-writer, one tenant")) {
                durations.audit_cpu_per_event = number(4);
            }
            // | segments | items | seeding (s) | wall (s) | … | CPU per item (ms) | …: the one-segment run.
            let one_segment = in_migrate && row.first() == Some(&"1") && durations.migrate_per_item.is_none();
            let run = (number(1), number(3), number(7));
            if let (true, (Some(items), Some(wall), Some(cpu))) = (one_segment, run) {
                durations.migrate_per_item = Some((cpu, (wall * 1000.0 / items.max(1.0) - cpu).max(0.0)));
            }
            if section.starts_with("## 3.") {
                let (fresh, reused) = durations.argon2_fresh_reused.unwrap_or_default();
                match row.first() {
                    Some(c) if c.starts_with("ours (") => {
                        durations.argon2_fresh_reused = number(1).map(|f| (f, reused))
                    }
                    Some(c) if c.starts_with("ours, one buffer") => {
                        durations.argon2_fresh_reused = number(1).map(|r| (fresh, r));
                    }
                    _ => {}
                }
            }
            let function =
                row.first().filter(|_| section.starts_with("## 4.")).and_then(|c| c.split_once(" ("));
            if let (Some((logical_id, _)), Some(rss)) = (function, number(7)) {
                durations.peak_rss.insert(logical_id.to_owned(), rss);
            }
        }
        durations.source = format!("sections 2 and 5 of this file ({})", stamps.join("; "));
        durations
    }
}

/// One operation, priced.
pub struct Priced {
    pub operation: String,
    pub function: String,
    /// Events in a batch (jobs) or 1.
    pub per: usize,
    pub calls: BTreeMap<String, Vec<String>>,
    pub accesses: Vec<Access>,
    pub kms: usize,
    pub sqs_requests: f64,
    /// Outbox events the operation wrote.
    pub events: usize,
    pub memory_mb: f64,
    /// Lambda duration (ms) and GB-seconds of one invocation, when measured.
    pub lambda: Option<(f64, f64)>,
    /// The handler's CPU on a full vCPU and its wait (ms) behind `lambda`.
    pub work: Option<(f64, f64)>,
}

/// Dollars per million operations (or events, for the jobs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Dollars {
    pub writes: f64,
    pub reads: f64,
    pub kms: f64,
    pub sqs: f64,
    pub lambda: f64,
    pub downstream: f64,
}

impl Dollars {
    pub fn total(&self) -> f64 {
        self.writes + self.reads + self.kms + self.sqs + self.lambda + self.downstream
    }

    pub fn own(&self) -> f64 {
        self.total() - self.downstream
    }
}

impl Priced {
    pub fn table_wru(&self) -> f64 {
        self.accesses.iter().map(|a| a.wru).sum()
    }

    pub fn index_wru(&self) -> f64 {
        self.accesses.iter().map(|a| a.index_wru).sum()
    }

    pub fn rru(&self) -> f64 {
        self.accesses.iter().map(|a| a.rru).sum()
    }

    /// Write and read units with a tenant id of `len` characters instead of
    /// the bench's: every copy of the tenant id grows by the difference.
    pub fn units_with_tenant(&self, len: usize, bench_tenant: usize) -> (f64, f64) {
        let grow = len.saturating_sub(bench_tenant);
        let (mut write, mut read) = (0.0, 0.0);
        for a in &self.accesses {
            let bytes = a.bytes + a.tenant_copies * grow;
            if a.wru > 0.0 {
                let factor = a.wru / write_units(a.bytes);
                write +=
                    factor * write_units(bytes) + a.index_wru / write_units(a.bytes) * write_units(bytes);
            }
            if a.rru > 0.0 {
                read += a.rru / read_units(a.bytes, true) * read_units(bytes, true);
            }
        }
        (write, read)
    }

    fn dynamodb_calls(&self) -> usize {
        self.calls.get("dynamodb").map_or(0, Vec::len)
    }

    /// Per operation (or per event), without what its events cost downstream.
    pub fn dollars(&self, downstream_per_event: f64) -> Dollars {
        let per = self.per.max(1) as f64;
        Dollars {
            writes: (self.table_wru() + self.index_wru()) * prices::DYNAMODB_WRITE_UNITS / per,
            reads: self.rru() * prices::DYNAMODB_READ_UNITS / per,
            kms: self.kms as f64 * prices::KMS_ASYMMETRIC / per,
            sqs: self.sqs_requests * prices::SQS_FIFO / per,
            lambda: self.lambda.map_or(0.0, |(_, gb_s)| prices::lambda_dollars(gb_s)) / per,
            downstream: self.events as f64 * downstream_per_event,
        }
    }
}

fn all_calls(row: &Priced) -> usize {
    row.calls.values().map(Vec::len).sum()
}

/// The calls of the request section 2 measured for each function: its first
/// row here (the fresh capture, not the replay).
fn measured_calls(rows: &[Priced]) -> HashMap<String, usize> {
    let mut calls = HashMap::new();
    for row in rows {
        calls.entry(row.function.clone()).or_insert_with(|| all_calls(row));
    }
    calls
}

/// The network wait per AWS call the HTTP functions measured (wall − CPU
/// over their calls, against the emulator), the jobs' stand-in.
fn wait_per_call(durations: &Durations, calls: &HashMap<String, usize>) -> f64 {
    let (mut wait, mut count) = (0.0, 0usize);
    for (function, (cpu, wall)) in &durations.by_function {
        if let Some(n) = calls.get(function) {
            wait += wall - cpu;
            count += n;
        }
    }
    if count == 0 { 0.0 } else { wait / count as f64 }
}

/// Prices the round-trip rows. `memory` is template.yaml's MemorySize per function.
pub fn price(
    rows: &[Row],
    indexes: &[Index],
    tenant: &str,
    memory: &HashMap<String, u64>,
    durations: &Durations,
) -> Vec<Priced> {
    let mut priced: Vec<Priced> = rows
        .iter()
        .map(|row| {
            let accesses = accounting::account(&row.exchanges, &row.changes, &row.current, indexes, tenant);
            let sqs_requests = row
                .exchanges
                .iter()
                .filter(|e| e.service == "sqs")
                .map(|e| e.request_bytes.div_ceil(prices::SQS_CHUNK_BYTES).max(1) as f64)
                .sum();
            let events = row
                .changes
                .iter()
                .filter(|c| c.event_name == "INSERT")
                .filter(|c| {
                    c.after.as_ref().and_then(|a| a.get("kind")).and_then(|k| k.get("S"))
                        == Some(&"outbox".into())
                })
                .count();
            Priced {
                operation: row.operation.clone(),
                function: row.function.clone(),
                per: row.per,
                calls: row.calls.clone(),
                accesses,
                kms: row.exchanges.iter().filter(|e| e.service == "kms").count(),
                sqs_requests,
                events,
                memory_mb: memory.get(&row.function).copied().unwrap_or(128) as f64,
                lambda: None,
                work: None,
            }
        })
        .collect();
    let calls = measured_calls(&priced);
    let wait = wait_per_call(durations, &calls);
    for row in &mut priced {
        let measured = durations.by_function.get(&row.function).copied();
        let (cpu, wait) = match (row.function.as_str(), measured) {
            // The handler's wall time less its CPU is its wait; a row with
            // more or fewer calls than the measured request waits in proportion.
            (_, Some((cpu, wall))) if row.per == 1 => {
                let measured_calls = calls.get(&row.function).copied().unwrap_or(1).max(1);
                (cpu, (wall - cpu) * all_calls(row) as f64 / measured_calls as f64)
            }
            ("OutboxDrainFunction", _) => match durations.drain_cpu_per_event {
                // SendMessageBatch calls one after the other, then the marks at once.
                Some(cpu) => {
                    (cpu * row.per as f64, wait * (row.calls.get("sqs").map_or(0, Vec::len) + 1) as f64)
                }
                None => continue,
            },
            ("AuditWriterFunction", _) => match durations.audit_cpu_per_event {
                Some(cpu) => (cpu * row.per as f64, wait * row.dynamodb_calls() as f64),
                None => continue,
            },
            _ => continue,
        };
        row.lambda = Some(prices::lambda(cpu, wait, row.memory_mb));
        row.work = Some((cpu, wait));
    }
    priced
}

/// SQS requests per event the audit writer's event source mapping makes that
/// the handler never sees: one ReceiveMessage and one DeleteMessageBatch per
/// batch of 10 (an estimate: Lambda's pollers also long-poll an empty queue).
pub const AUDIT_POLL_REQUESTS_PER_EVENT: f64 = 0.2;

/// What one outbox event costs after its transaction: the drain's share and
/// the audit writer's, per event, in dollars.
pub fn downstream_per_event(priced: &[Priced]) -> f64 {
    let job = |function: &str| priced.iter().find(|p| p.function == function).map(|p| p.dollars(0.0).total());
    job("OutboxDrainFunction").unwrap_or(0.0)
        + job("AuditWriterFunction").unwrap_or(0.0)
        + AUDIT_POLL_REQUESTS_PER_EVENT * prices::SQS_FIFO
}

/// A capture the Powertools way, on the same stack: a conditional PutItem of
/// an INPROGRESS record, a GetItem of the payment, the business transaction
/// (ours, without our idempotency record), and an UpdateItem that completes
/// the record with the response. The record has Powertools' attributes
/// (`expiration`, `in_progress_expiration`, `status`, `validation`, `data`)
/// and our key scheme.
pub async fn powertools_capture(bench: &Bench, fixture: &Fixture) -> Result<Row> {
    let payment = fixture.payment(bench, 1).await?;
    let record = Powertools::new(bench);
    bench.reset().await?;
    record.reserve().await?;
    record
        .dynamodb
        .get_item()
        .table_name(&record.table)
        .set_key(Some(caas::store::payments::payment_key(crate::bench::TENANT, &payment)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| powertools_error(&e))?;
    let app = bench.app("CapturePaymentFunction", Cost::Template, true)?;
    let response =
        dispatch(&app, "CapturePaymentFunction", capture_call(&fixture.token, &payment).request()?).await?;
    record.complete(&expect("CapturePaymentFunction", &response, 200)?.to_string()).await?;
    let mut row =
        take(bench, "CapturePaymentFunction", "capture-payment, the Powertools way (for comparison)", 1)
            .await?;
    // Our read (idempotency record + payment) and our idempotency record in
    // the transaction are what the Powertools calls replace.
    row.exchanges.retain(|e| e.operation != "BatchGetItem");
    for exchange in row.exchanges.iter_mut().filter(|e| e.operation == "TransactWriteItems") {
        if let Some(items) = exchange.request["TransactItems"].as_array_mut() {
            items.retain(|i| i["Put"]["Item"]["kind"]["S"] != "idempotency");
        }
    }
    if let Some(ops) = row.calls.get_mut("dynamodb") {
        ops.retain(|op| op != "BatchGetItem");
    }
    Ok(row)
}

fn powertools_error(error: &dyn std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("Powertools capture: {error}"))
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A Powertools idempotency record of one capture, on the recorded client.
struct Powertools<'a> {
    dynamodb: &'a aws_sdk_dynamodb::Client,
    table: String,
    pk: String,
    now: i64,
}

impl<'a> Powertools<'a> {
    fn new(bench: &'a Bench) -> Self {
        let hash = uuid::Uuid::new_v4().simple().to_string();
        Self {
            dynamodb: bench.recorded_dynamodb(),
            table: bench.stack.table(),
            pk: format!("T#{}#IDEM#capture-payment#{hash}", crate::bench::TENANT),
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
        }
    }

    fn key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_owned(), s(&self.pk)), ("sk".to_owned(), s("IDEM"))])
    }

    /// The conditional put of the INPROGRESS record (Powertools' algorithm).
    async fn reserve(&self) -> Result<()> {
        let mut item = self.key();
        item.extend([
            ("expiration".to_owned(), n(self.now + 3600)),
            ("in_progress_expiration".to_owned(), n(self.now * 1000 + 29_000)),
            ("status".to_owned(), s("INPROGRESS")),
            ("validation".to_owned(), s(&uuid::Uuid::new_v4().simple().to_string())),
        ]);
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expiration < :now OR (#status = :inprogress AND in_progress_expiration < :now_ms)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(self.now))
            .expression_attribute_values(":now_ms", n(self.now * 1000))
            .expression_attribute_values(":inprogress", s("INPROGRESS"))
            .send()
            .await
            .map_err(|e| powertools_error(&e))?;
        Ok(())
    }

    /// The update to COMPLETED with the response as `data`.
    async fn complete(&self, response: &str) -> Result<()> {
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key()))
            .update_expression("SET #data = :data, expiration = :exp, #status = :completed")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":data", s(response))
            .expression_attribute_values(":exp", n(self.now + 3600))
            .expression_attribute_values(":completed", s("COMPLETED"))
            .send()
            .await
            .map_err(|e| powertools_error(&e))?;
        Ok(())
    }
}
