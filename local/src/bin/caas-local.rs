//! `caas-local`: runs the whole stack locally (see `caas-local --help`).
//! `scripts/run` builds the functions and calls it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use caas_local::Options;

const USAGE: &str = "\
usage: caas-local [options]
       caas-local ws [--send FRAME]... [--receive N] [--timeout SECONDS] URL   (a WebSocket client)

Runs template.yaml locally: the AWS emulator (unless AWS_ENDPOINT_URL is set), the
template's tables, keys, queues and buckets, every function as its compiled binary, the HTTP API,
the WebSocket API, the Lambda Invoke API, and the stream, queue and schedule triggers.
Ctrl-C stops it all.

options:
  --template PATH            template.yaml (default: ./template.yaml)
  --bin-dir DIR              the functions' binaries (default: target/release)
  --host IP                  address to listen on (default: 127.0.0.1)
  --api-port N               HTTP API port (default: 3000; 0 picks a free one)
  --invoke-port N            Lambda Invoke API port (default: 3001; 0 picks a free one)
  --ws-port N                WebSocket API and its @connections endpoint (default: 3002; 0 picks a free one)
  --data-dir DIR             logs, emulator files, stack file (default: .local/run)
  --persist                  keep the stack across restarts (needs AWS_ENDPOINT_URL; moto keeps no state)
  --schedule-speedup X       run rate() schedules X times faster (default: 1; 0: on demand only)
  --max-instances N          concurrent instances per function (default: 4); more invocations wait
  --parameter-overrides K=V  a template parameter (repeatable), e.g. Argon2MemoryKiB=19456
  --emulator 'CMD ARGS'      the emulator to start (default: '.venv/bin/python scripts/emulator.py')
  -h, --help                 this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ws") {
        return websocket_client(args[1..].to_vec());
    }
    let options = match parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("caas-local: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAAS_LOCAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("caas-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(caas_local::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caas-local: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `caas-local ws ...`: the WebSocket client.
fn websocket_client(args: Vec<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("caas-local ws: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(caas_local::ws_client::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("caas-local ws: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        template: PathBuf::from("template.yaml"),
        bin_dir: PathBuf::from("target/release"),
        host: IpAddr::from([127, 0, 0, 1]),
        api_port: 3000,
        invoke_port: 3001,
        ws_port: 3002,
        data_dir: PathBuf::from(".local/run"),
        persist: false,
        schedule_speedup: 1.0,
        max_instances: 4,
        parameter_overrides: BTreeMap::new(),
        emulator: vec![".venv/bin/python".to_owned(), "scripts/emulator.py".to_owned()],
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value"));
        let number =
            |text: String| text.parse::<u64>().map_err(|_| format!("{flag}: {text:?} is not a number"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--template" => options.template = value()?.into(),
            "--bin-dir" => options.bin_dir = value()?.into(),
            "--data-dir" => options.data_dir = value()?.into(),
            "--host" => options.host = value()?.parse().map_err(|_| format!("{flag}: not an IP address"))?,
            "--api-port" => options.api_port = port(number(value()?)?, &flag)?,
            "--invoke-port" => options.invoke_port = port(number(value()?)?, &flag)?,
            "--ws-port" => options.ws_port = port(number(value()?)?, &flag)?,
            "--persist" => options.persist = true,
            "--schedule-speedup" => {
                let text = value()?;
                options.schedule_speedup = text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("{flag}: {text:?} is not a non-negative number"))?;
            }
            "--max-instances" => {
                options.max_instances = usize::try_from(number(value()?)?)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: must be at least 1"))?;
            }
            "--parameter-overrides" => {
                let text = value()?;
                let (key, val) =
                    text.split_once('=').ok_or_else(|| format!("{flag}: expected Name=Value"))?;
                options.parameter_overrides.insert(key.to_owned(), val.to_owned());
            }
            "--emulator" => options.emulator = value()?.split_whitespace().map(str::to_owned).collect(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Some(options))
}

fn port(n: u64, flag: &str) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("{flag}: {n} is not a port"))
}
