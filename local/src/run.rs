//! The whole stack on one machine: the AWS emulator (or the endpoint the environment
//! names), the template's resources, every function as its compiled binary behind the
//! Runtime API emulator, the HTTP API, the Invoke API and the event source mappings.
//! Ctrl-C (or SIGTERM) stops every process it started and waits until they are gone.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::LocalError;
use crate::functions::{Console, Function};
use crate::http_api::RouteTable;
use crate::invoke_api::InvokeApi;
use crate::pollers::{QueueSource, StreamSource};
use crate::provision::{Stack, provision, random_suffix};
use crate::runtime_api::Launch;
use crate::schedule::Schedule;
use crate::template::{EventSource, Template};

const DUMMY_CREDENTIAL: &str = "testing";
const EMULATOR_READY_TIMEOUT: Duration = Duration::from_secs(60);
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

/// The emulator process this run started.
struct Emulator {
    child: tokio::process::Child,
    url: String,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(options: Options) -> Result<(), RunError> {
    let started = Instant::now();
    let console = Arc::new(Console);
    let template = Template::load(&options.template)?;
    let binaries = check_binaries(&template, &options.bin_dir)?;
    std::fs::create_dir_all(&options.data_dir)
        .map_err(io(format!("creating {}", options.data_dir.display())))?;

    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|u| !u.trim().is_empty());
    let mut emulator = match endpoint {
        Some(_) => None,
        None if options.persist => return Err(RunError::PersistUnsupported),
        None => Some(start_emulator(&options, &console).await?),
    };
    let aws_env = aws_env(emulator.as_ref().map(|e| e.url.as_str()));
    let sdk = sdk_config(&aws_env).await;
    let region = aws_env.get("AWS_REGION").cloned().unwrap_or_default();

    let own_emulator = emulator.is_some();
    let outcome = serve(
        &options,
        &template,
        &binaries,
        &sdk,
        &aws_env,
        &region,
        console.clone(),
        started,
        own_emulator,
    )
    .await;

    if let Some(emulator) = emulator.as_mut() {
        let _ = emulator.child.start_kill();
        let _ = emulator.child.wait().await;
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    options: &Options,
    template: &Template,
    binaries: &BTreeMap<String, PathBuf>,
    sdk: &SdkConfig,
    aws_env: &BTreeMap<String, String>,
    region: &str,
    console: Arc<Console>,
    started: Instant,
    own_emulator: bool,
) -> Result<(), RunError> {
    let (stack, keep) = stack(options, template, sdk).await?;
    let result =
        serve_stack(options, template, binaries, sdk, aws_env, region, console.clone(), started, &stack)
            .await;
    // An emulator this run started goes away with everything in it.
    if !keep && !own_emulator {
        stack.teardown(sdk).await;
        console.note(&format!("removed the stack's resources (suffix {})", stack.suffix));
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn serve_stack(
    options: &Options,
    template: &Template,
    binaries: &BTreeMap<String, PathBuf>,
    sdk: &SdkConfig,
    aws_env: &BTreeMap<String, String>,
    region: &str,
    console: Arc<Console>,
    started: Instant,
    stack: &Stack,
) -> Result<(), RunError> {
    let logs = options.data_dir.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;

    let mut functions: BTreeMap<String, Arc<Function>> = BTreeMap::new();
    for spec in template.functions() {
        let mut env = stack.function_env(template, &spec.logical_id, &options.parameter_overrides)?;
        env.extend(aws_env.clone());
        env.extend(lambda_env(template, &spec.logical_id, spec.memory_mb, &options.bin_dir));
        let launch = Launch {
            function: spec.logical_id.clone(),
            binary: binaries[&spec.logical_id].clone(),
            env,
            log_file: logs.join(format!("{}.log", spec.logical_id)),
            arn: format!("arn:aws:lambda:{region}:{}:function:{}", crate::ACCOUNT_ID, spec.logical_id),
        };
        let function = Function::new(spec.clone(), launch, options.max_instances, console.clone());
        functions.insert(spec.logical_id.clone(), Arc::new(function));
    }

    let mut triggers = JoinSet::new();
    let mut schedules = Vec::new();
    for function in functions.values() {
        for event in &function.spec.events {
            match event {
                EventSource::HttpApi { .. } => {}
                EventSource::DynamoDbStream { table_logical_id, batch_size, filter_patterns } => {
                    let Some(stream_arn) =
                        stack.resources.get(table_logical_id).and_then(|t| t.stream_arn.clone())
                    else {
                        console.note(&format!(
                            "{table_logical_id} has no stream; {} gets no records",
                            function.name()
                        ));
                        continue;
                    };
                    let source = StreamSource {
                        function: function.clone(),
                        stream_arn,
                        batch_size: usize::try_from(*batch_size).unwrap_or(100).max(1),
                        filters: filter_patterns.clone(),
                        region: region.to_owned(),
                    };
                    triggers.spawn(source.run(aws_sdk_dynamodbstreams::Client::new(sdk)));
                }
                EventSource::Sqs { queue_logical_id, batch_size } => {
                    let Some(queue) = stack.resources.get(queue_logical_id) else {
                        continue;
                    };
                    let source = QueueSource {
                        function: function.clone(),
                        queue_url: queue.url.clone().unwrap_or_default(),
                        queue_arn: queue.arn.clone(),
                        batch_size: i32::try_from(*batch_size).unwrap_or(10),
                        region: region.to_owned(),
                    };
                    triggers.spawn(source.run(aws_sdk_sqs::Client::new(sdk)));
                }
                EventSource::Schedule { name, expression, input } => {
                    let schedule = Schedule {
                        function: function.clone(),
                        name: name.clone(),
                        expression: expression.clone(),
                        input: input.clone(),
                        region: region.to_owned(),
                    };
                    if options.schedule_speedup > 0.0 {
                        triggers.spawn(schedule.clone().run(options.schedule_speedup));
                    }
                    schedules.push(schedule);
                }
            }
        }
    }

    let routes = RouteTable::new(template.http_routes());
    let api_listener = bind(options.host, options.api_port, "the HTTP API").await?;
    let invoke_listener = bind(options.host, options.invoke_port, "the Invoke API").await?;
    let api_url = url_of(&api_listener)?;
    let invoke_url = url_of(&invoke_listener)?;
    let invoke_api = Arc::new(InvokeApi {
        functions: functions.clone(),
        routes: routes.clone(),
        schedules: schedules.clone(),
        background: Mutex::new(JoinSet::new()),
    });
    let mut servers = JoinSet::new();
    {
        let functions = Arc::new(functions.clone());
        let routes = Arc::new(routes.clone());
        servers.spawn(crate::http::serve(api_listener, move |request| {
            let (functions, routes) = (functions.clone(), routes.clone());
            async move { crate::http_api::handle(&routes, &functions, request).await }
        }));
        let api = invoke_api.clone();
        servers.spawn(crate::http::serve(invoke_listener, move |request| {
            let api = api.clone();
            async move { api.handle(request).await }
        }));
    }

    print_banner(options, template, &routes, &schedules, stack, &api_url, &invoke_url, &logs, started);

    wait_for_shutdown().await;
    console.note("stopping");
    triggers.shutdown().await;
    servers.shutdown().await;
    let background = std::mem::take(&mut *invoke_api.background.lock().unwrap_or_else(|p| p.into_inner()));
    let mut background = background;
    background.shutdown().await;
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
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn print_banner(
    options: &Options,
    template: &Template,
    routes: &RouteTable,
    schedules: &[Schedule],
    stack: &Stack,
    api_url: &str,
    invoke_url: &str,
    logs: &Path,
    started: Instant,
) {
    println!();
    println!(
        "CAAS local stack ({} functions, resources suffixed -{})",
        template.functions().len(),
        stack.suffix
    );
    println!("  HTTP API     {api_url}");
    for route in routes.routes() {
        println!("    {:<7} {:<36} -> {}", route.method, route.path, route.function_logical_id);
    }
    println!(
        "  Invoke API   {invoke_url}   (aws lambda invoke --endpoint-url {invoke_url} --function-name <LogicalId> ...)"
    );
    for schedule in schedules {
        let pace = match (crate::schedule::rate_period(&schedule.expression), options.schedule_speedup) {
            (_, s) if s <= 0.0 => "on demand only".to_owned(),
            (Some(_), s) if s != 1.0 => format!("{s}x speed"),
            (Some(_), _) => "real time".to_owned(),
            (None, _) => "on demand only".to_owned(),
        };
        println!(
            "  Schedule     {}.{} {} ({pace}); fire now: curl -X POST {invoke_url}/local/schedules/{}/{}",
            schedule.function.name(),
            schedule.name,
            schedule.expression,
            schedule.function.name(),
            schedule.name,
        );
    }
    println!("  Function logs {}", logs.display());
    println!("  Ctrl-C stops everything.");
    println!("ready in {:.1} s: api={api_url} invoke={invoke_url}", started.elapsed().as_secs_f64());
    println!();
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

/// Each function's binary, checked to exist.
fn check_binaries(template: &Template, dir: &Path) -> Result<BTreeMap<String, PathBuf>, RunError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for spec in template.functions() {
        let path = dir.join(&spec.binary);
        if path.is_file() {
            found.insert(spec.logical_id, path);
        } else {
            missing.push(spec.binary);
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(RunError::MissingBinaries { dir: dir.to_path_buf(), missing: missing.join(", ") })
    }
}

/// The stack to serve, and whether to keep it at exit. With `persist` the stack file
/// in the data directory names resources created by an earlier run; they are reused
/// while their table still exists.
async fn stack(options: &Options, template: &Template, sdk: &SdkConfig) -> Result<(Stack, bool), RunError> {
    let file = options.data_dir.join("stack.json");
    let previous = if options.persist { read_stack(&file)? } else { None };
    if let Some(stack) = previous {
        let table = stack.table_name().unwrap_or_default().to_owned();
        let exists =
            aws_sdk_dynamodb::Client::new(sdk).describe_table().table_name(&table).send().await.is_ok();
        if exists {
            println!("reusing the stack of {} (suffix {})", file.display(), stack.suffix);
            return Ok((stack, true));
        }
    }
    let stack = provision(template, sdk, &random_suffix()).await?;
    if options.persist {
        let text = serde_json::to_string_pretty(&stack).unwrap_or_default();
        std::fs::write(&file, text).map_err(io(format!("writing {}", file.display())))?;
    }
    Ok((stack, options.persist))
}

fn read_stack(path: &Path) -> Result<Option<Stack>, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RunError::StackFile { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

async fn start_emulator(options: &Options, console: &Console) -> Result<Emulator, RunError> {
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
    let deadline = Instant::now() + EMULATOR_READY_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        let exited = child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(RunError::EmulatorNotReady { addr, log });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://{addr}");
    console.note(&format!(
        "emulator {url} started (pid {}), log {}",
        child.id().unwrap_or_default(),
        log.display()
    ));
    Ok(Emulator { child, url })
}

/// The AWS settings every function and this process use: the environment's, with the
/// started emulator's endpoint and dummy credentials when this run started one.
fn aws_env(started_emulator: Option<&str>) -> BTreeMap<String, String> {
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

async fn sdk_config(aws_env: &BTreeMap<String, String>) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
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

/// What Lambda's environment sets for every function.
fn lambda_env(
    template: &Template,
    function: &str,
    memory_mb: u64,
    task_root: &Path,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(format) = template.log_format(function) {
        env.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format);
    }
    env
}

async fn bind(host: IpAddr, port: u16, what: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind((host, port)).await.map_err(io(format!("binding {what} to {host}:{port}")))
}

fn url_of(listener: &TcpListener) -> Result<String, RunError> {
    let addr = listener.local_addr().map_err(io("reading a bound address"))?;
    Ok(format!("http://{addr}"))
}
