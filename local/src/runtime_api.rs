//! One execution environment of a function: its compiled binary as a child process,
//! talking to a Lambda Runtime API served on its own loopback port. The Runtime API is
//! the documented one (`/2018-06-01/runtime/invocation/next`, `/{id}/response`,
//! `/{id}/error`, `/runtime/init/error`); an instance handles one invocation at a
//! time, like a Lambda execution environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

mod server;

use server::{Invocation, RuntimeState};

/// What the function answered.
#[derive(Debug, Clone)]
pub enum Reply {
    Success(Bytes),
    /// An error the function reported, or one Lambda would report for it (timeout,
    /// crash, missing binary): `payload` is the `{"errorType", "errorMessage"}` document.
    Failure {
        error_type: String,
        payload: Bytes,
    },
}

impl Reply {
    pub fn failure(error_type: &str, message: &str) -> Self {
        let payload = serde_json::json!({ "errorType": error_type, "errorMessage": message });
        Reply::Failure { error_type: error_type.to_owned(), payload: Bytes::from(payload.to_string()) }
    }
}

/// How to start an instance of a function.
#[derive(Debug, Clone)]
pub struct Launch {
    pub function: String,
    pub binary: std::path::PathBuf,
    pub env: BTreeMap<String, String>,
    pub log_file: std::path::PathBuf,
    pub arn: String,
}

/// A running instance. Dropping it kills the process.
pub struct Instance {
    pub number: u32,
    pub pid: u32,
    invocations: mpsc::Sender<Invocation>,
    state: Arc<RuntimeState>,
    exited: watch::Receiver<Option<String>>,
    kill: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

/// What an instance's outcome means for the instance itself.
pub enum Fate {
    /// It answered and can take the next invocation.
    Warm,
    /// It timed out or died: it is gone.
    Gone,
}

impl Instance {
    /// Starts the process and its Runtime API. The process initialises on its own
    /// (Lambda's init phase) and then waits for the first invocation.
    pub async fn start(launch: &Launch, number: u32) -> Result<Instance, std::io::Error> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (invocations, receiver) = mpsc::channel(1);
        let state = Arc::new(RuntimeState::new(launch.arn.clone(), receiver));
        let server = server::serve(listener, state.clone());
        let mut child = match command(launch, addr).and_then(|mut command| command.spawn()) {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        let pid = child.id().unwrap_or_default();
        let (kill, kill_requested) = oneshot::channel::<()>();
        let (exit_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_requested => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let description = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown exit ({e})"),
            };
            let _ = exit_tx.send(Some(description));
        });
        Ok(Instance { number, pid, invocations, state, exited, kill: Some(kill), server })
    }

    /// Becomes `Some(exit status)` once the process has exited and been reaped.
    pub fn exit_watch(&self) -> watch::Receiver<Option<String>> {
        self.exited.clone()
    }

    pub fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Runs one invocation; `timeout` is the function's configured timeout.
    pub async fn invoke(&mut self, payload: Bytes, timeout: Duration) -> (Reply, Fate) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let (reply, answer) = oneshot::channel();
        let invocation = Invocation { request_id, payload, deadline_ms, reply };
        if self.invocations.send(invocation).await.is_err() {
            return (self.exit_reply("the runtime API is gone"), Fate::Gone);
        }
        let mut exited = self.exited.clone();
        tokio::select! {
            answer = answer => match answer {
                Ok(reply) => (reply, Fate::Warm),
                Err(_) => (self.exit_reply("the invocation was dropped"), Fate::Gone),
            },
            _ = exited.wait_for(Option::is_some) => (self.exit_reply("exited"), Fate::Gone),
            _ = tokio::time::sleep(timeout) => {
                let message = format!("Task timed out after {:.2} seconds", timeout.as_secs_f64());
                (Reply::failure("Sandbox.Timedout", &message), Fate::Gone)
            }
        }
    }

    /// Kills the process and waits until it is reaped.
    pub async fn stop(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.exited.wait_for(Option::is_some).await;
        self.server.abort();
    }

    fn exit_reply(&self, what: &str) -> Reply {
        let status = self.exited.borrow().clone().unwrap_or_else(|| "still running".to_owned());
        let init = self.state.init_error();
        let message = match init {
            Some(init) => format!("Runtime {what} ({status}); init error: {init}"),
            None => format!("Runtime {what} ({status}); see the function's log"),
        };
        Reply::failure("Runtime.ExitError", &message)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.server.abort();
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, std::io::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// The function's process: its binary with the template's environment, talking to the
/// Runtime API at `addr`, its output appended to its log.
fn command(launch: &Launch, addr: SocketAddr) -> Result<tokio::process::Command, std::io::Error> {
    let log = open_log(&launch.log_file)?;
    let mut command = tokio::process::Command::new(&launch.binary);
    command
        .env_clear()
        .envs(passthrough_env())
        .envs(&launch.env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // Its own process group: a terminal's Ctrl-C reaches only the runner, which
    // then stops every instance itself (and can tell an invocation apart from a
    // shutdown).
    #[cfg(unix)]
    command.process_group(0);
    Ok(command)
}

/// What a Lambda process inherits from the machine: a PATH, and the AWS SDK settings
/// the local stack runs with (endpoint, region, credentials). Everything else comes
/// from the template.
fn passthrough_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| {
            matches!(name.as_str(), "PATH" | "HOME" | "TZ")
                || (name.starts_with("AWS_") && !name.starts_with("AWS_LAMBDA_"))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A function written against the Runtime API alone (Python, no Lambda library):
    /// echoes its payload with its pid; `{"fail": true}` reports an error,
    /// `{"crash": true}` exits, `{"sleep": s}` sleeps; `{"failed_ids": [..]}` answers a
    /// batch response failing those ids.
    pub(crate) const FAKE_FUNCTION: &str = r#"#!/usr/bin/env python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
def post(url, body):
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode(), method="POST"))
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    if event.get("fail"):
        post(api + rid + "/error", {"errorType": "Boom", "errorMessage": "asked to fail"})
        continue
    if event.get("crash"):
        sys.exit(3)
    time.sleep(event.get("sleep", 0))
    records = event.get("Records", [])
    failed = [{"itemIdentifier": r["messageId"]} for r in records if "fail" in r.get("body", "")]
    post(api + rid + "/response", {"pid": os.getpid(), "event": event, "batchItemFailures": failed,
                                   "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]})
"#;

    pub(crate) fn fake_launch(dir: &Path) -> Launch {
        let binary = dir.join("fake-function");
        std::fs::write(&binary, FAKE_FUNCTION).expect("write the fake function");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let env = [("AWS_LAMBDA_FUNCTION_NAME", "Fake")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Launch {
            function: "Fake".to_owned(),
            binary,
            env,
            log_file: dir.join("fake.log"),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:Fake".to_owned(),
        }
    }

    pub(crate) fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("caas-local-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn json_of(reply: &Reply) -> serde_json::Value {
        match reply {
            Reply::Success(body) => serde_json::from_slice(body).expect("JSON reply"),
            Reply::Failure { payload, .. } => serde_json::from_slice(payload).expect("JSON error"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_instance_answers_reports_errors_times_out_and_dies() {
        let dir = temp_dir();
        let mut instance = Instance::start(&fake_launch(&dir), 1).await.expect("start");
        let timeout = Duration::from_secs(30);

        let (reply, fate) = instance.invoke(Bytes::from(r#"{"n":1}"#), timeout).await;
        assert!(matches!(fate, Fate::Warm));
        let body = json_of(&reply);
        assert_eq!(body["event"]["n"], 1);
        assert_eq!(body["pid"], instance.pid);
        assert_eq!(body["function"], "Fake");

        let (reply, fate) = instance.invoke(Bytes::from(r#"{"fail":true}"#), timeout).await;
        assert!(matches!(fate, Fate::Warm), "a reported error keeps the instance");
        assert!(matches!(&reply, Reply::Failure { .. }));
        assert_eq!(json_of(&reply)["errorType"], "Boom");

        let (reply, fate) = instance.invoke(Bytes::from(r#"{"sleep":5}"#), Duration::from_millis(300)).await;
        assert!(matches!(fate, Fate::Gone));
        assert_eq!(json_of(&reply)["errorType"], "Sandbox.Timedout");
        instance.stop().await;

        let mut instance = Instance::start(&fake_launch(&dir), 2).await.expect("start");
        let (reply, fate) = instance.invoke(Bytes::from(r#"{"crash":true}"#), timeout).await;
        assert!(matches!(fate, Fate::Gone));
        assert_eq!(json_of(&reply)["errorType"], "Runtime.ExitError");
        assert!(!instance.is_alive());
        let pid = instance.pid;
        instance.stop().await;
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the crashed process was reaped");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_binary_is_an_error_not_a_hang() {
        let dir = temp_dir();
        let mut launch = fake_launch(&dir);
        launch.binary = dir.join("no-such-binary");
        assert!(Instance::start(&launch, 1).await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
