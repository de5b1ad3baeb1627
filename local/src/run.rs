//! The whole stack on one machine: the AWS emulator (or the endpoint the environment
//! names), the template's resources, every function as its compiled binary behind the
//! Runtime API emulator, the HTTP API, the Invoke API and the event source mappings.
//! Ctrl-C (or SIGTERM) stops every process it started and waits until they are gone.

mod aws;
mod banner;
mod persist;
mod servers;
mod wiring;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use crate::error::LocalError;
use crate::functions::{Console, Function};
use crate::stack::Stack;
use crate::template::Template;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The run command's settings (see `caas-local --help`).
#[derive(Debug, Clone)]
pub struct Options {
    pub template: PathBuf,
    /// Where the functions' binaries are (`target/release`, `target/debug`).
    pub bin_dir: PathBuf,
    pub host: IpAddr,
    /// 0 picks a free port.
    pub api_port: u16,
    pub invoke_port: u16,
    /// The WebSocket API and its `@connections` management endpoint.
    pub ws_port: u16,
    /// Logs, the emulator's files and (with `persist`) the stack's description.
    pub data_dir: PathBuf,
    pub persist: bool,
    /// How much faster than real time `rate()` schedules fire; 0 turns them off.
    pub schedule_speedup: f64,
    pub max_instances: usize,
    pub parameter_overrides: BTreeMap<String, String>,
    /// The emulator to start when `AWS_ENDPOINT_URL` is not set: program and
    /// arguments, to which `-H <host> -p <port>` are appended.
    pub emulator: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Template(#[from] LocalError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("function binaries missing in {dir}: {missing} (build them: cargo build --workspace --bins)")]
    MissingBinaries { dir: PathBuf, missing: String },
    #[error("the emulator did not come up on {addr}; see {log}")]
    EmulatorNotReady { addr: SocketAddr, log: PathBuf },
    #[error(
        "--persist needs an emulator that keeps its state: moto server keeps everything in memory (its request \
         recorder replays requests, but KMS keys come back with new key material, so encrypted data and tokens \
         would not survive). Point AWS_ENDPOINT_URL at a long-running endpoint to keep a stack across restarts."
    )]
    PersistUnsupported,
    #[error("the stack file {path} is not valid: {reason}")]
    StackFile { path: PathBuf, reason: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// What one run works with once the template is read and the AWS endpoint is known.
struct Session<'a> {
    options: &'a Options,
    template: Template,
    /// Each function's binary, by logical id.
    binaries: BTreeMap<String, PathBuf>,
    sdk: SdkConfig,
    /// The AWS settings every function gets (endpoint, region, credentials).
    aws_env: BTreeMap<String, String>,
    region: String,
    console: Arc<Console>,
    started: Instant,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(options: Options) -> Result<(), RunError> {
    let started = Instant::now();
    let console = Arc::new(Console);
    let template = Template::load(&options.template)?;
    let binaries = wiring::check_binaries(&template, &options.bin_dir)?;
    std::fs::create_dir_all(&options.data_dir)
        .map_err(io(format!("creating {}", options.data_dir.display())))?;

    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|u| !u.trim().is_empty());
    let mut emulator = match endpoint {
        Some(_) => None,
        None if options.persist => return Err(RunError::PersistUnsupported),
        None => Some(aws::Emulator::start(&options, &console).await?),
    };
    let aws_env = aws::aws_env(emulator.as_ref().map(|e| e.url.as_str()));
    let sdk = aws::sdk_config(&aws_env).await;
    let region = aws_env.get("AWS_REGION").cloned().unwrap_or_default();
    let session = Session { options: &options, template, binaries, sdk, aws_env, region, console, started };

    let outcome = serve(&session, emulator.is_some()).await;
    if let Some(emulator) = emulator.as_mut() {
        emulator.stop().await;
    }
    outcome
}

async fn serve(session: &Session<'_>, own_emulator: bool) -> Result<(), RunError> {
    let (stack, keep) = persist::stack(session.options, &session.template, &session.sdk).await?;
    let result = serve_stack(session, &stack).await;
    // An emulator this run started goes away with everything in it.
    if !keep && !own_emulator {
        stack.teardown(&session.sdk).await;
        session.console.note(&format!("removed the stack's resources (suffix {})", stack.suffix));
    }
    result
}

async fn serve_stack(session: &Session<'_>, stack: &Stack) -> Result<(), RunError> {
    let logs = session.options.data_dir.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;

    // Bound first: the functions' environment points at it.
    let websocket = servers::bind_websocket(session).await?;
    let websocket_url = websocket.as_ref().map(|(_, url)| url.as_str());
    let functions = wiring::functions(session, stack, &logs, websocket_url)?;
    let (mut triggers, schedules) = wiring::triggers(session, stack, &functions);
    let servers = servers::Servers::start(session, &functions, schedules, websocket).await?;
    banner::print(session, stack, &servers, &logs);

    wait_for_shutdown().await;
    session.console.note("stopping");
    triggers.shutdown().await;
    servers.shutdown().await;
    stop_functions(&session.console, &functions).await;
    Ok(())
}

/// Stops every function's processes and says whether any outlived the grace period.
async fn stop_functions(console: &Console, functions: &BTreeMap<String, Arc<Function>>) {
    let mut left = Vec::new();
    let mut processes = 0;
    for function in functions.values() {
        processes += function.pids().len();
        left.extend(function.shutdown(SHUTDOWN_GRACE).await);
    }
    if left.is_empty() {
        console.note(&format!("stopped {processes} function process(es); none left"));
    } else {
        console.note(&format!("processes still running after {SHUTDOWN_GRACE:?}: {left:?}"));
    }
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
