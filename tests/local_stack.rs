//! The run command end to end: `scripts/run` (the README's command, with the dev
//! profile, free ports and the test run's emulator from AWS_ENDPOINT_URL) runs as a
//! child process; the tests talk to it over real HTTP only — the HTTP API, the Lambda
//! Invoke API and its `/local/` endpoints — and stop it with SIGINT.

use caas_local::Template;
use caas_local::http::{ClientResponse, request};
use caas_tests::repo_root;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bounded waits (readiness includes `scripts/run` building the function binaries).
const READY_WITHIN: Duration = Duration::from_secs(1200);
const EVENTUAL_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(60);

struct RunningStack {
    child: Child,
    data_dir: std::path::PathBuf,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    api: String,
    invoke: String,
}

impl RunningStack {
    fn start() -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts the emulator"
        );
        let data_dir = std::env::temp_dir().join(format!("caas-local-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(repo_root().join("scripts/run"))
            .args(["--profile", "dev", "--api-port", "0", "--invoke-port", "0", "--schedule-speedup", "0"])
            .arg("--data-dir")
            .arg(&data_dir)
            // The cheapest Argon2id the template allows: this test is about the plumbing.
            .args([
                "--parameter-overrides",
                "Argon2MemoryKiB=7168",
                "--parameter-overrides",
                "Argon2Iterations=2",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start scripts/run");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[stack] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stack = RunningStack {
            child,
            data_dir,
            lines,
            output: Vec::new(),
            api: String::new(),
            invoke: String::new(),
        };
        let ready = stack
            .wait_for_line(READY_WITHIN, |l| l.starts_with("ready in "))
            .expect("the stack reports ready");
        stack.api = field(&ready, "api=");
        stack.invoke = field(&ready, "invoke=");
        stack
    }

    /// Reads output until a line satisfies `done`.
    fn wait_for_line(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.output.push(line.clone());
            if done(&line) {
                return Some(line);
            }
        }
    }

    /// Output so far, including lines not waited for yet.
    fn output(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.output.push(line);
        }
        &self.output
    }

    async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> ClientResponse {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let key = uuid::Uuid::new_v4().to_string();
        let mut headers = vec![("content-type", "application/json"), ("idempotency-key", key.as_str())];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        request(method, &format!("{}{path}", self.api), &headers, body).await.expect("HTTP API request")
    }

    async fn invoke(&self, function: &str, payload: &Value) -> ClientResponse {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.invoke);
        request("POST", &url, &[], payload.to_string()).await.expect("Invoke API request")
    }

    /// SIGINT (Ctrl-C), then the exit status and every pid the stack reported.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<u32>) {
        let status =
            Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -INT failed");
        let deadline = Instant::now() + STOP_WITHIN;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("wait for the stack") {
                break exit;
            }
            assert!(Instant::now() < deadline, "the stack did not stop after SIGINT");
            std::thread::sleep(Duration::from_millis(100));
        };
        let pids = self
            .output()
            .iter()
            .filter_map(|line| line.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
            .collect();
        (exit, pids)
    }
}

/// A test that fails half-way still stops the stack (and so every function process).
impl Drop for RunningStack {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + STOP_WITHIN;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .to_owned()
}

/// A process with this pid that is one of the stack's binaries.
fn stack_process_alive(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z'));
    let binary = String::from_utf8_lossy(&cmdline).split('\0').next().unwrap_or_default().to_owned();
    !zombie && binary.contains("target/")
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENTUAL_WITHIN;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_command_serves_the_demo_flow_and_stops_cleanly() {
    let mut stack = RunningStack::start();
    let template = Template::load(repo_root().join("template.yaml")).expect("template.yaml");
    let tenant = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    // The operator's step: the tenant, open to signup, through the Invoke API.
    let create = json!({ "action": "create", "tenant_id": tenant, "name": "Demo", "signup": "open", "owner_email": "owner@example.com" });
    let created = stack.invoke("TenantsFunction", &create).await;
    assert_eq!(created.status, 200);
    assert_eq!(created.header("x-amz-function-error"), None, "tenant create failed: {:?}", created.json());
    assert_eq!(created.json()["tenant"]["signup"], "open");

    // Register the owner with the owner invitation, and log in.
    let user = json!({ "tenant_id": tenant, "email": "owner@example.com", "password": "correct horse battery staple" });
    let mut registration = user.clone();
    registration["invitation"] = created.json()["owner_invitation"]["token"].clone();
    let registered = stack.api("POST", "/v1/users", None, Some(&registration)).await;
    assert_eq!(registered.status, 201, "{:?}", registered.json());
    let login = stack.api("POST", "/v1/auth/login", None, Some(&user)).await;
    assert_eq!(login.status, 200, "{:?}", login.json());
    let token = login.json()["access_token"].as_str().expect("access token").to_owned();

    // Accounts, then a payment authorized and captured.
    let account = async |body: Value| {
        let created = stack.api("POST", "/v1/accounts", Some(&token), Some(&body)).await;
        assert_eq!(created.status, 201, "{:?}", created.json());
        created.json()["account_id"].as_str().expect("account id").to_owned()
    };
    // An overdraft is the owner's (or an admin's) to give, always with a limit.
    let funding = account(json!({ "currency": "USD", "allow_overdraft": true, "overdraft_limit": 1_000_000, "name": "funding" })).await;
    let alice = account(json!({ "currency": "USD", "name": "alice" })).await;
    let payment = json!({ "amount": 10_000, "currency": "USD", "payer_account_id": funding, "payee_account_id": alice });
    let authorized = stack.api("POST", "/v1/payments", Some(&token), Some(&payment)).await;
    assert_eq!(authorized.status, 201, "{:?}", authorized.json());
    assert_eq!(authorized.json()["status"], "authorized");
    let payment_id = authorized.json()["payment_id"].as_str().expect("payment id").to_owned();
    let captured = stack
        .api("POST", &format!("/v1/payments/{payment_id}/capture"), Some(&token), Some(&json!({})))
        .await;
    assert_eq!(captured.status, 200, "{:?}", captured.json());
    assert_eq!(captured.json()["status"], "captured");

    // Balances.
    let balance = stack.api("GET", &format!("/v1/accounts/{alice}"), Some(&token), None).await;
    assert_eq!(balance.status, 200);
    assert_eq!(
        balance.json()["balance"],
        json!({ "posted": 10_000, "pending_debits": 0, "pending_credits": 0, "available": 10_000 })
    );
    let funding_balance = stack.api("GET", &format!("/v1/accounts/{funding}"), Some(&token), None).await;
    assert_eq!(funding_balance.json()["balance"]["posted"], -10_000);

    // The capture's outbox event goes table → stream poller → outbox-drain → events
    // queue → queue poller → audit-writer → the tenant's audit chain.
    let entries = eventually("payment.captured in the audit chain", async || {
        let page = stack.api("GET", "/v1/audit/events", Some(&token), None).await;
        let entries = page.json()["entries"].as_array().cloned().unwrap_or_default();
        entries.iter().any(|e| e["type"] == "payment.captured").then_some(entries)
    })
    .await;
    let types: BTreeSet<&str> = entries.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in ["user.registered", "account.created", "payment.authorized", "payment.captured"] {
        assert!(types.contains(expected), "{expected} missing from the audit chain: {types:?}");
    }
    let verified = stack.api("GET", "/v1/audit/verify", Some(&token), None).await;
    assert_eq!(verified.status, 200, "{:?}", verified.json());
    assert_eq!(verified.json()["ok"], true, "{:?}", verified.json());
    assert!(verified.json()["entries_checked"].as_u64().unwrap_or_default() >= entries.len() as u64);
    let output = stack.output().to_vec();
    let ran = |function: &str, trigger: &str| {
        output.iter().any(|l| l.contains(function) && l.contains(trigger) && l.contains(" ok "))
    };
    assert!(ran("OutboxDrainFunction", "stream "), "no stream invocation of the drain in the output");
    assert!(ran("AuditWriterFunction", "sqs "), "no queue invocation of the audit writer in the output");

    // Jobs through the Invoke API.
    let functions: BTreeSet<String> = template.functions().into_iter().map(|f| f.logical_id).collect();
    if functions.contains("BackupFunction") {
        let backup = stack.invoke("BackupFunction", &json!({ "action": "run" })).await;
        assert_eq!(backup.status, 200);
        assert_eq!(backup.header("x-amz-function-error"), None, "backup failed: {:?}", backup.json());
    }
    if functions.contains("MigrateFunction") {
        let status = stack.invoke("MigrateFunction", &json!({ "action": "status" })).await;
        assert_eq!(status.status, 200);
        assert_eq!(status.header("x-amz-function-error"), None, "migrate status failed: {:?}", status.json());
        assert!(status.json().get("current_version").is_some(), "{:?}", status.json());
    }
    let verify = stack.invoke("VerifyFunction", &json!({})).await;
    assert_eq!(verify.status, 200);
    assert_eq!(verify.header("x-amz-function-error"), None, "verify failed: {:?}", verify.json());
    let fired = request("POST", &format!("{}/local/schedules/VerifyFunction", stack.invoke), &[], "")
        .await
        .expect("fire");
    assert_eq!(fired.status, 200, "{:?}", fired.json());
    let unknown = stack.invoke("NoSuchFunction", &json!({})).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-amzn-errortype"), Some("ResourceNotFoundException"));

    // Ctrl-C: every process the stack started is gone.
    let (exit, pids) = stack.stop();
    assert!(exit.success(), "the stack exited with {exit}");
    assert!(!pids.is_empty(), "the stack reported no processes");
    let left: Vec<u32> = pids.into_iter().filter(|pid| stack_process_alive(*pid)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_routes_are_the_templates() {
    let mut stack = RunningStack::start();
    let template = Template::load(repo_root().join("template.yaml")).expect("template.yaml");
    let expected: BTreeSet<(String, String, String)> =
        template.http_routes().into_iter().map(|r| (r.method, r.path, r.function_logical_id)).collect();

    let listed =
        request("GET", &format!("{}/local/routes", stack.invoke), &[], "").await.expect("route table");
    let served: BTreeSet<(String, String, String)> = listed
        .json()
        .as_array()
        .expect("a list of routes")
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("method"), text("path"), text("function"))
        })
        .collect();
    assert_eq!(served, expected);

    // Every route reaches its function: an answer, never the gateway's own 404.
    for (method, path, function) in &expected {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let body = (method == "POST").then(|| json!({}));
        let response = stack.api(method, &concrete, None, body.as_ref()).await;
        assert!(
            response.json() != json!({ "message": "Not Found" }),
            "{method} {path} did not reach {function}"
        );
        let line = format!("{function} ");
        let trigger = format!("http {method} {path}");
        stack
            .wait_for_line(EVENTUAL_WITHIN, |l| l.contains(&line) && l.contains(&trigger))
            .unwrap_or_else(|| panic!("no invocation line for {function} ({trigger})"));
    }
    let missing = stack.api("GET", "/v1/no-such-route", None, None).await;
    assert_eq!((missing.status, missing.json()), (404, json!({ "message": "Not Found" })));

    let (exit, pids) = stack.stop();
    assert!(exit.success(), "the stack exited with {exit}");
    let left: Vec<u32> = pids.into_iter().filter(|pid| stack_process_alive(*pid)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}
