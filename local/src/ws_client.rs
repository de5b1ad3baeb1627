//! `caas-local ws`: a small WebSocket client for the local WebSocket API (the demo's):
//! connects, sends the given frames, and prints each text frame it receives on its own
//! line until it has received `--receive N` frames (or one containing `--until TEXT`)
//! or `--timeout` passes. A refused
//! handshake prints the status and body and fails.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub const USAGE: &str = "\
usage: caas-local ws [--send FRAME]... [--receive N] [--until TEXT] [--timeout SECONDS] URL

Connects to URL (ws://HOST:PORT/STAGE?access_token=...), prints `connected` on stderr,
sends each FRAME (text), then prints every text frame received, one per line, until N
frames (default: 0, just the sends) or one containing TEXT have arrived; it fails when
SECONDS (default: 30) pass first.";

#[derive(Debug)]
struct Args {
    url: String,
    send: Vec<String>,
    receive: usize,
    until: Option<String>,
    timeout: Duration,
}

fn parse(args: Vec<String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        url: String::new(),
        send: Vec::new(),
        receive: 0,
        until: None,
        timeout: Duration::from_secs(30),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--send" => parsed.send.push(value()?),
            "--until" => parsed.until = Some(value()?),
            "--receive" => parsed.receive = value()?.parse().map_err(|_| "--receive: not a number")?,
            "--timeout" => {
                let seconds: u64 = value()?.parse().map_err(|_| "--timeout: not a number of seconds")?;
                parsed.timeout = Duration::from_secs(seconds);
            }
            url if !url.starts_with('-') && parsed.url.is_empty() => parsed.url = url.to_owned(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if parsed.url.is_empty() {
        return Err("no URL".to_owned());
    }
    Ok(Some(parsed))
}

/// Runs the client; the error is the message to print.
pub async fn run(args: Vec<String>) -> Result<(), String> {
    let Some(args) = parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let (mut socket, _) = match tokio_tungstenite::connect_async(args.url.as_str()).await {
        Ok(connected) => connected,
        Err(WsError::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            return Err(format!("the handshake was refused: {} {body}", response.status()));
        }
        Err(e) => return Err(format!("cannot connect: {e}")),
    };
    eprintln!("connected");
    for frame in args.send {
        socket.send(Message::text(frame)).await.map_err(|e| format!("cannot send: {e}"))?;
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut received = 0;
    let mut found = args.until.is_none();
    while received < args.receive || !found {
        let Ok(frame) = tokio::time::timeout_at(deadline, socket.next()).await else {
            return Err(format!("{received} frame(s) within {:?}, not what was awaited", args.timeout));
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                println!("{text}");
                received += 1;
                found |= args.until.as_deref().is_some_and(|until| text.contains(until));
            }
            Some(Ok(Message::Close(_))) | None => return Err("the server closed the connection".to_owned()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the connection failed: {e}")),
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}
