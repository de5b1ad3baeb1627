//! Cold start: each function's release binary launched behind the Runtime
//! API emulator with the environment template.yaml gives it (the template's
//! Argon2 cost); measured from the process start to its first answer. Also
//! the stripped binary size, the size of the binary zipped as a Lambda bundle
//! (a single `bootstrap`), and the peak RSS after the first invocation.

use crate::bench::*;
use crate::error::{BenchError, Result};
use crate::http::{Call, expect};
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::stats::{Summary, summarize};
use caas_tests::triggers::StreamTrigger;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct Row {
    pub function: String,
    pub binary: String,
    pub size: Option<u64>,
    pub zipped: Option<u64>,
    pub init: Summary,
    pub first: Summary,
    pub peak_rss_kib: Vec<u64>,
    pub answers: Vec<String>,
    pub note: Option<String>,
}

/// Events for `function`'s first invocations, one per start; None when the
/// bench has no event for it.
async fn events(
    bench: &Bench,
    fixture: &Fixture,
    function: &str,
    starts: usize,
) -> Result<Option<Vec<Value>>> {
    let token = &fixture.token;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let repeat = |call: &dyn Fn(usize) -> Call<'static>| -> Vec<Value> {
        (0..starts).map(|i| call(i).event()).collect()
    };
    let events = match function {
        "RegisterFunction" => repeat(&|i| register_call(TENANT, &format!("cold-{run_id}-{i}@example.com"))),
        "LoginFunction" => repeat(&|_| login_call(TENANT, &fixture.email)),
        "RefreshFunction" | "LogoutFunction" => {
            let route = if function == "RefreshFunction" { "/v1/auth/refresh" } else { "/v1/auth/logout" };
            let mut events = Vec::new();
            for _ in 0..starts {
                let (_, refresh_token) = fixture.login(bench).await?;
                events.push(refresh_call(route, &refresh_token).event());
            }
            events
        }
        "JwksFunction" => repeat(&|_| Call::new("GET", "/.well-known/jwks.json")),
        "CreateAccountFunction" => repeat(&|_| create_account_call(token, false)),
        "GetAccountFunction" => {
            repeat(&|_| Call::new("GET", "/v1/accounts/{id}").id(&fixture.payer).bearer(token))
        }
        "ListTransactionsFunction" => {
            repeat(&|_| Call::new("GET", "/v1/accounts/{id}/transactions").id(&fixture.payer).bearer(token))
        }
        "CreatePaymentFunction" => repeat(&|_| create_payment_call(token, &fixture.payer, &fixture.payee, 1)),
        "CapturePaymentFunction" | "VoidPaymentFunction" => {
            let mut events = Vec::new();
            for _ in 0..starts {
                let payment = fixture.payment(bench, 1).await?;
                let call = if function == "CapturePaymentFunction" {
                    capture_call(token, &payment)
                } else {
                    void_call(token, &payment)
                };
                events.push(call.event());
            }
            events
        }
        "RefundPaymentFunction" | "GetPaymentFunction" => {
            let amount = i64::try_from(starts).unwrap_or(i64::MAX);
            let payment = fixture.payment(bench, amount).await?;
            expect(
                "CapturePaymentFunction",
                &bench.call("CapturePaymentFunction", &capture_call(token, &payment)).await?,
                200,
            )?;
            if function == "RefundPaymentFunction" {
                repeat(&|_| refund_call(token, &payment, 1))
            } else {
                repeat(&|_| Call::new("GET", "/v1/payments/{id}").id(&payment).bearer(token))
            }
        }
        "ListAuditFunction" => {
            repeat(&|_| Call::new("GET", "/v1/audit/events").query("limit", "50").bearer(token))
        }
        "VerifyAuditFunction" => repeat(&|_| Call::new("GET", "/v1/audit/verify").bearer(token)),
        "OutboxDrainFunction" => {
            let stream = StreamTrigger::new(&bench.stack, "OutboxDrainFunction");
            let _ = stream.poll().await;
            for i in 0..10 {
                let response = bench
                    .call_cheap(
                        "RegisterFunction",
                        &register_call(TENANT, &format!("cold-drain-{run_id}-{i}@example.com")),
                    )
                    .await?;
                expect("RegisterFunction", &response, 201)?;
            }
            let event = value_of(&StreamTrigger::event(stream.poll().await).payload)?;
            vec![event; starts]
        }
        "AuditWriterFunction" => {
            let mut events = Vec::new();
            for _ in 0..starts {
                events.push(value_of(&sqs_event(audit_messages("cold-audit", 10)?))?);
            }
            events
        }
        "VerifyFunction" => vec![json!({ "tenant_id": TENANT }); starts],
        // Jobs whose sample event needs no live ids: the sample itself.
        "BackupFunction" => vec![sample("backup.json")?; starts],
        "MigrateFunction" => vec![sample("migrate-status.json")?; starts],
        _ => return Ok(None),
    };
    Ok(Some(events))
}

fn sample(file: &str) -> Result<Value> {
    let path = caas_tests::repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).map_err(BenchError::io(format!("read {}", path.display())))?;
    Ok(serde_json::from_str(&text)?)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the function answered: the HTTP status for API Gateway responses,
/// else `ok` or the error type.
fn answer(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Response { body, .. } => {
            let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            match value.get("statusCode").and_then(Value::as_u64) {
                Some(status) => status.to_string(),
                None => match value.get("batchItemFailures").and_then(Value::as_array) {
                    Some(failures) if !failures.is_empty() => {
                        format!("{} batch item failures", failures.len())
                    }
                    _ => "ok".to_owned(),
                },
            }
        }
        Outcome::Error { body, .. } => format!("error {}", String::from_utf8_lossy(body)),
        Outcome::InitError { body, .. } => format!("init error {}", String::from_utf8_lossy(body)),
    }
}

struct Start {
    init: Duration,
    first: Duration,
    peak_rss_kib: Option<u64>,
    answer: String,
}

async fn start(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
    name: &str,
    timeout: Duration,
) -> Result<Start> {
    let arn = format!("arn:aws:lambda:us-east-1:{}:function:{name}", caas_local::ACCOUNT_ID);
    let mut api = RuntimeApi::start(serde_json::to_vec(event)?, arn, timeout)
        .await
        .map_err(BenchError::io("runtime API"))?;
    let launched = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io(format!("start {}", binary.display())))?;
    let outcome = tokio::time::timeout(timeout, api.outcomes.recv()).await;
    let pid = child.id();
    let peak = pid.and_then(peak_rss_kib);
    let _ = child.kill().await;
    let outcome = match outcome {
        Ok(Some(outcome)) => outcome,
        Ok(None) | Err(_) => return Err(BenchError::Setup(format!("{name}: no answer within {timeout:?}"))),
    };
    let at = match &outcome {
        Outcome::Response { at, .. } | Outcome::Error { at, .. } | Outcome::InitError { at, .. } => *at,
    };
    let init = api.first_next().map_or(Duration::ZERO, |next| next.saturating_duration_since(launched));
    Ok(Start {
        init,
        first: at.saturating_duration_since(launched),
        peak_rss_kib: peak,
        answer: answer(&outcome),
    })
}

/// The binary zipped as a Lambda bundle (one `bootstrap` entry, deflated),
/// with Python's zipfile; its size in bytes.
fn zipped_size(python: &str, binary: &Path, scratch: &Path) -> Option<u64> {
    let zip = scratch.join(format!("{}.zip", binary.file_name()?.to_string_lossy()));
    let script = "import sys, zipfile\n\
info = zipfile.ZipInfo('bootstrap', (2026, 1, 1, 0, 0, 0))\n\
info.external_attr = 0o100755 << 16\n\
info.compress_type = zipfile.ZIP_DEFLATED\n\
with zipfile.ZipFile(sys.argv[2], 'w') as z, open(sys.argv[1], 'rb') as f:\n    z.writestr(info, f.read())\n";
    let status =
        std::process::Command::new(python).arg("-c").arg(script).arg(binary).arg(&zip).status().ok()?;
    if !status.success() {
        return None;
    }
    let size = std::fs::metadata(&zip).ok()?.len();
    let _ = std::fs::remove_file(&zip);
    Some(size)
}

pub struct Options {
    pub bin_dir: PathBuf,
    pub starts: usize,
    pub python: String,
    pub scratch: PathBuf,
}

pub async fn measure(bench: &Bench, fixture: &Fixture, options: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let passthrough: Vec<(String, String)> = [
        "PATH",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
    .collect();
    for spec in bench.stack.template.functions() {
        let binary = options.bin_dir.join(&spec.binary);
        let mut row = Row {
            function: spec.logical_id.clone(),
            binary: spec.binary.clone(),
            size: std::fs::metadata(&binary).ok().map(|m| m.len()),
            zipped: None,
            init: Summary::default(),
            first: Summary::default(),
            peak_rss_kib: Vec::new(),
            answers: Vec::new(),
            note: None,
        };
        if row.size.is_none() {
            row.note = Some(format!("no release binary at {}", binary.display()));
            rows.push(row);
            continue;
        }
        row.zipped = zipped_size(&options.python, &binary, &options.scratch);
        let Some(events) = events(bench, fixture, &spec.logical_id, options.starts).await? else {
            row.note = Some("no first event defined in the bench for this function".to_owned());
            rows.push(row);
            continue;
        };
        let mut env = passthrough.clone();
        env.extend(bench.env(&spec.logical_id, Cost::Template)?);
        env.extend([
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), spec.logical_id.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), spec.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
        ]);
        let timeout = Duration::from_secs(spec.timeout_seconds.clamp(5, 60));
        let (mut init, mut first) = (Vec::new(), Vec::new());
        for event in &events {
            match start(&binary, &env, event, &spec.logical_id, timeout).await {
                Ok(start) => {
                    init.push(start.init);
                    first.push(start.first);
                    row.peak_rss_kib.extend(start.peak_rss_kib);
                    if !row.answers.contains(&start.answer) {
                        row.answers.push(start.answer);
                    }
                }
                Err(e) => {
                    row.note = Some(e.to_string());
                    break;
                }
            }
        }
        row.init = summarize(&init);
        row.first = summarize(&first);
        eprintln!("  {}: {} starts", spec.logical_id, first.len());
        rows.push(row);
    }
    Ok(rows)
}
