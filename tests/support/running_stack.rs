//! The run command as a child process, for the tests that go through the local stack
//! over real connections only: `scripts/run` (the README's command, with the dev
//! profile, free ports, no schedules and the test run's emulator from
//! AWS_ENDPOINT_URL), its HTTP API, Lambda Invoke API and WebSocket API, stopped with
//! SIGINT.

use crate::repo_root;
use caas_local::http::{ClientResponse, request};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bounded waits (readiness includes `scripts/run` building the function binaries).
pub const READY_WITHIN: Duration = Duration::from_secs(1200);
pub const EVENTUAL_WITHIN: Duration = Duration::from_secs(60);
pub const STOP_WITHIN: Duration = Duration::from_secs(60);

pub struct RunningStack {
    child: Child,
    data_dir: std::path::PathBuf,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    pub api: String,
    pub invoke: String,
    /// The WebSocket API (`ws://HOST:PORT/{stage}`).
    pub ws: String,
}

impl RunningStack {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more `--parameter-overrides Name=Value`.
    pub fn start_with(overrides: &[&str]) -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts the emulator"
        );
        let data_dir = std::env::temp_dir().join(format!("caas-local-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(repo_root().join("scripts/run"))
            .args(["--profile", "dev", "--api-port", "0", "--invoke-port", "0", "--ws-port", "0"])
            .args(["--schedule-speedup", "0"])
            .arg("--data-dir")
            .arg(&data_dir)
            // The cheapest Argon2id the template allows: this test is about the plumbing.
            .args([
                "--parameter-overrides",
                "Argon2MemoryKiB=7168",
                "--parameter-overrides",
                "Argon2Iterations=2",
            ])
            .args(overrides.iter().flat_map(|o| ["--parameter-overrides", o]))
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
            ws: String::new(),
        };
        let ready = stack
            .wait_for_line(READY_WITHIN, |l| l.starts_with("ready in "))
            .expect("the stack reports ready");
        stack.api = field(&ready, "api=");
        stack.invoke = field(&ready, "invoke=");
        stack.ws = field(&ready, "ws=");
        stack
    }

    /// Reads output until a line satisfies `done`.
    pub fn wait_for_line(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
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
    pub fn output(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.output.push(line);
        }
        &self.output
    }

    pub async fn api(
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

    pub async fn invoke(&self, function: &str, payload: &Value) -> ClientResponse {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.invoke);
        request("POST", &url, &[], payload.to_string()).await.expect("Invoke API request")
    }

    /// SIGINT (Ctrl-C), then the exit status and every pid the stack reported.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<u32>) {
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

pub fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .to_owned()
}

/// A process with this pid that is one of the stack's binaries.
pub fn stack_process_alive(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z'));
    let binary = String::from_utf8_lossy(&cmdline).split('\0').next().unwrap_or_default().to_owned();
    !zombie && binary.contains("target/")
}

pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENTUAL_WITHIN;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
