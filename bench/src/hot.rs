//! Hot accounts by simulation: captures per second into one merchant
//! account of 1 balance shard and of 8, side by side in one run, through the
//! fault-injection proxy of the tests (`caas_tests::faults`) with its
//! per-item write limit (DynamoDB's 1,000 write units per second per
//! partition, scaled down) on the merchant account's items. The payers are
//! many accounts, left unlimited (each customer's own account is not hot).
//!
//! Each run authorizes a pool of payments into the merchant account (no
//! limit), then, with the limit on, keeps `concurrency` captures in flight
//! for `seconds`: a 503 (the transaction builder gave up on a throttled
//! item) is retried with the same Idempotency-Key, as a client would. Each
//! capture goes to the shard its payment was given, so the shards are K
//! queues fed at random: with N captures in flight a shard is idle about
//! (K − 1) / (N + K − 1) of the time (a closed network of K servers), so N
//! is well above K (96 by default: 93 % of 8 shards busy). The
//! rate is the captures answered 200 within the window; captures still in
//! flight when it closes finish afterwards and are not counted. `verify`
//! replays the tenant's ledger after both runs.

use crate::bench::{Bench, Cost, Fixture, account, capture_call, payment};
use crate::error::{BenchError, Result};
use crate::http::{Call, dispatch, expect, field};
use caas::App;
use caas::config::Config;
use caas_tests::faults::{Attempts, FaultPlan, FaultProxy, HotItemLimit};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client waits before retrying a 503 (the same key).
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub struct Options {
    /// The write units per second per item the limit allows (a capture's
    /// update of the merchant's balance item costs 2: it is transactional).
    pub units_per_second: f64,
    pub seconds: u64,
    pub concurrency: usize,
    /// The shard counts to compare.
    pub shards: Vec<u32>,
}

pub struct Run {
    pub shards: u32,
    pub captures: usize,
    pub elapsed: Duration,
    /// Throttled writes of the merchant's items (the proxy's count).
    pub throttled: u64,
    /// 503 answers retried by the client.
    pub retried: usize,
    /// Distinct merchant items written (its balance items and its entries).
    pub items: usize,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.captures as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

pub struct Report {
    pub runs: Vec<Run>,
    pub options: Options,
    pub verify_ok: bool,
    pub verify_summary: String,
}

fn hot_account_call(token: &str, shards: u32) -> Call<'static> {
    let body = json!({ "currency": "USD", "name": "bench merchant", "shards": shards });
    Call::new("POST", "/v1/accounts").bearer(token).idempotency_key().json(&body)
}

/// The capture app behind the proxy: template.yaml's configuration, the
/// proxy's clients.
fn capture_app(bench: &Bench, proxy: &FaultProxy, attempts: &Attempts) -> Result<Arc<App>> {
    let env = bench.env("CapturePaymentFunction", Cost::Cheap)?;
    let config = Config::from_lookup(|name| env.get(name).cloned())
        .map_err(|e| BenchError::Setup(format!("config of CapturePaymentFunction: {e}")))?;
    Ok(Arc::new(App::new(config, proxy.clients(&bench.stack.sdk, attempts))))
}

pub async fn measure(bench: &Bench, fixture: &Fixture, options: Options) -> Result<Report> {
    let upstream = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| BenchError::Setup("AWS_ENDPOINT_URL is not set".into()))?;
    let proxy = FaultProxy::start(&upstream, FaultPlan::quiet())
        .await
        .map_err(|e| BenchError::Setup(format!("start the fault proxy: {e}")))?;
    let attempts = Attempts::default();
    let app = capture_app(bench, &proxy, &attempts)?;
    let token = &fixture.token;
    let mut payers = Vec::new();
    for _ in 0..16 {
        payers.push(account(bench, token, true).await?);
    }
    let per_item = options.units_per_second / 2.0;
    let mut runs = Vec::new();
    for &shards in &options.shards {
        let response = bench.call("CreateAccountFunction", &hot_account_call(token, shards)).await?;
        let merchant = field(&expect("CreateAccountFunction", &response, 201)?, "account_id")?;
        // Enough payments for the window at the limit's rate, and a margin.
        let pool = (per_item * f64::from(shards) * options.seconds as f64 * 1.5).ceil() as usize
            + 2 * options.concurrency;
        eprintln!("caas-bench: hot account, {shards} shard(s): authorizing {pool} payments");
        let mut payments = Vec::with_capacity(pool);
        for n in 0..pool {
            payments.push(payment(bench, token, &payers[n % payers.len()], &merchant, 100).await?);
        }
        proxy.set_plan(
            FaultPlan::new(u64::from(shards)).hot_items(HotItemLimit {
                units_per_second: options.units_per_second,
                burst_units: options.units_per_second,
                ..HotItemLimit::partition_limit_scaled_down(1.0)
                    .only_keys_containing(format!("ACCOUNT#{merchant}"))
            }),
        );
        proxy.reset_stats();
        eprintln!("caas-bench: hot account, {shards} shard(s): capturing for {} s", options.seconds);
        let started = Instant::now();
        let window = Duration::from_secs(options.seconds);
        let captures = payments.iter().map(|id| {
            let app = app.clone();
            let call = capture_call(token, id);
            async move {
                if started.elapsed() >= window {
                    return Ok((None, 0));
                }
                let mut retried = 0;
                loop {
                    let response = dispatch(&app, "CapturePaymentFunction", call.request()?).await?;
                    match response.status().as_u16() {
                        200 => return Ok((Some(started.elapsed()), retried)),
                        503 => {
                            retried += 1;
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        _ => {
                            expect("CapturePaymentFunction", &response, 200)?;
                        }
                    }
                }
            }
        });
        let results: Vec<Result<(Option<Duration>, usize)>> =
            futures::stream::iter(captures).buffer_unordered(options.concurrency).collect().await;
        let mut run = Run { shards, captures: 0, elapsed: window, throttled: 0, retried: 0, items: 0 };
        for result in results {
            let (done, retried) = result?;
            run.retried += retried;
            run.captures += usize::from(done.is_some_and(|at| at <= window));
        }
        run.throttled = proxy.stats().hot_item_throttles;
        run.items = proxy.hot_items().len();
        eprintln!(
            "caas-bench: hot account, {shards} shard(s): {} captures in {} s, {:.1}/s",
            run.captures,
            options.seconds,
            run.per_second()
        );
        proxy.set_plan(FaultPlan::quiet());
        runs.push(run);
    }
    let tenant = caas::tenant::TenantId::parse(crate::bench::TENANT)
        .map_err(|e| BenchError::Setup(format!("tenant: {e}")))?;
    let report = caas::ledger::verify::verify_ledger(
        &bench.stack.clients.dynamodb,
        &bench.stack.table(),
        Some(&tenant),
        None,
    )
    .await
    .map_err(|e| BenchError::Setup(format!("verify: {e}")))?;
    let verify_summary = format!(
        "{} accounts, {} entries, {} transactions, {} payments checked; drift {}, shard mismatches {}, \
         payment mismatches {}, unbalanced transactions {}",
        report.accounts_checked,
        report.entries_checked,
        report.transactions_checked,
        report.payments_checked,
        report.drift.len(),
        report.shard_mismatch.len(),
        report.payment_mismatch.len(),
        report.unbalanced_transactions.len()
    );
    Ok(Report { runs, options, verify_ok: report.ok, verify_summary })
}
