//! The AWS side of a run: the emulator it starts when no endpoint is configured, and
//! the settings the runner and every function reach AWS with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use super::{Options, RunError, io};
use crate::functions::Console;

const DUMMY_CREDENTIAL: &str = "testing";
const EMULATOR_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The emulator process this run started.
pub(super) struct Emulator {
    child: tokio::process::Child,
    pub url: String,
}

impl Emulator {
    /// Starts `options.emulator` on a free port of `options.host` and waits until it
    /// accepts connections.
    pub async fn start(options: &Options, console: &Console) -> Result<Emulator, RunError> {
        let port = std::net::TcpListener::bind((options.host, 0))
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free port for the emulator"))?
            .port();
        let addr = SocketAddr::new(options.host, port);
        let log = options.data_dir.join("emulator.log");
        let log_file = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let Some((program, args)) = options.emulator.split_first() else {
            return Err(RunError::Io {
                what: "starting the emulator".to_owned(),
                source: std::io::Error::other("no emulator command given"),
            });
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .args(["-H", &options.host.to_string(), "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io("opening the emulator log"))?)
            .stderr(log_file)
            .kill_on_drop(true);
        // Stopped by the runner after the functions, not by the terminal's Ctrl-C.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(io(format!("starting the emulator ({program})")))?;
        if !wait_until_listening(&mut child, addr).await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(RunError::EmulatorNotReady { addr, log });
        }
        let url = format!("http://{addr}");
        console.note(&format!(
            "emulator {url} started (pid {}), log {}",
            child.id().unwrap_or_default(),
            log.display()
        ));
        Ok(Emulator { child, url })
    }

    /// Kills the emulator and waits until it is reaped.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// False when the process exits or does not listen on `addr` in time.
async fn wait_until_listening(child: &mut tokio::process::Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + EMULATOR_READY_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        let exited = child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The AWS settings every function and this process use: the environment's, with the
/// started emulator's endpoint and dummy credentials when this run started one.
pub(super) fn aws_env(started_emulator: Option<&str>) -> BTreeMap<String, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut env = BTreeMap::new();
    let region =
        var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
    env.insert("AWS_REGION".to_owned(), region.clone());
    env.insert("AWS_DEFAULT_REGION".to_owned(), region);
    match started_emulator {
        Some(url) => {
            env.insert("AWS_ENDPOINT_URL".to_owned(), url.to_owned());
            env.insert("AWS_ACCESS_KEY_ID".to_owned(), DUMMY_CREDENTIAL.to_owned());
            env.insert("AWS_SECRET_ACCESS_KEY".to_owned(), DUMMY_CREDENTIAL.to_owned());
            env.insert("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned());
        }
        None => {
            for name in [
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_EC2_METADATA_DISABLED",
            ] {
                if let Some(value) = var(name) {
                    env.insert(name.to_owned(), value);
                }
            }
        }
    }
    env
}

pub(super) async fn sdk_config(aws_env: &BTreeMap<String, String>) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::provision::http_client())
        .region(aws_config::Region::new(aws_env.get("AWS_REGION").cloned().unwrap_or_default()));
    if let Some(url) = aws_env.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(url);
    }
    if let (Some(key), Some(secret)) =
        (aws_env.get("AWS_ACCESS_KEY_ID"), aws_env.get("AWS_SECRET_ACCESS_KEY"))
    {
        let token = aws_env.get("AWS_SESSION_TOKEN").cloned();
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            key, secret, token, None, "local",
        ));
    }
    loader.load().await
}
