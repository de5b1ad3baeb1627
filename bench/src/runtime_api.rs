//! A minimal Lambda Runtime API (the part a function's bootstrap uses): the
//! first `GET /2018-06-01/runtime/invocation/next` gets the one event of the
//! run; later ones are held open (a warm container waiting for work). The
//! function's answer (`/response`, `/error`, `/init/error`) is reported with
//! the instant it arrived.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Outcome {
    Response { at: Instant, body: Vec<u8> },
    Error { at: Instant, body: Vec<u8> },
    InitError { at: Instant, body: Vec<u8> },
}

struct Shared {
    event: Mutex<Option<Vec<u8>>>,
    next_at: Mutex<Option<Instant>>,
    function_arn: String,
    timeout: Duration,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

pub struct RuntimeApi {
    pub address: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
}

impl RuntimeApi {
    /// Listens on a free loopback port with `event` as the one invocation.
    pub async fn start(event: Vec<u8>, function_arn: String, timeout: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (tx, outcomes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            event: Mutex::new(Some(event)),
            next_at: Mutex::new(None),
            function_arn,
            timeout,
            outcomes: tx,
        });
        let accept_shared = shared.clone();
        let server = tokio::spawn(async move {
            // Dropped (so aborted) with this task.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(connection(stream, accept_shared.clone()));
            }
        });
        Ok(Self { address, shared, server, outcomes })
    }

    /// When the function first asked for work.
    pub fn first_next(&self) -> Option<Instant> {
        *self.shared.next_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, path) =
        (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await?;
            let size =
                usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer).await? == 0 || trailer.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).await?;
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(Some(Request { method, path, body }))
}

async fn respond(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body).await?;
    writer.flush().await
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Ok(Some(request)) = read_request(&mut reader).await {
        let now = Instant::now();
        let path = request.path.as_str();
        let result = if request.method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            let event = shared.event.lock().unwrap_or_else(|p| p.into_inner()).take();
            match event {
                Some(event) => {
                    *shared.next_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
                    let deadline =
                        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + shared.timeout;
                    let headers = [
                        ("content-type", "application/json".to_owned()),
                        ("lambda-runtime-aws-request-id", uuid::Uuid::new_v4().to_string()),
                        ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
                        ("lambda-runtime-invoked-function-arn", shared.function_arn.clone()),
                        (
                            "lambda-runtime-trace-id",
                            "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                        ),
                    ];
                    respond(&mut write, "200 OK", &headers, &event).await
                }
                // A warm container waiting for its next event.
                None => std::future::pending().await,
            }
        } else if request.method == "POST" && path.starts_with("/2018-06-01/runtime/") {
            let outcome = if path.ends_with("/response") {
                Outcome::Response { at: now, body: request.body }
            } else if path == "/2018-06-01/runtime/init/error" {
                Outcome::InitError { at: now, body: request.body }
            } else {
                Outcome::Error { at: now, body: request.body }
            };
            let _ = shared.outcomes.send(outcome);
            respond(
                &mut write,
                "202 Accepted",
                &[("content-type", "application/json".to_owned())],
                br#"{"status":"OK"}"#,
            )
            .await
        } else {
            respond(&mut write, "404 Not Found", &[], b"").await
        };
        if result.is_err() {
            return;
        }
    }
}
