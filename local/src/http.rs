//! The HTTP plumbing the local servers share (hyper, HTTP/1.1), and a minimal client
//! for tools and tests that talk to them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub type Response = hyper::Response<Full<Bytes>>;

/// A request with its body read.
pub struct Request {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

/// Accepts connections until the task running it is dropped or aborted (which also
/// drops every open connection).
pub async fn serve<H, Fut>(listener: TcpListener, handler: H)
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let handler = handler.clone();
                            async move { Ok::<_, Infallible>(handle(request, peer, handler).await) }
                        });
                        // A client that goes away mid-request is not our problem to report.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle<H, Fut>(request: hyper::Request<Incoming>, peer: SocketAddr, handler: H) -> Response
where
    H: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return text(http::StatusCode::BAD_REQUEST, "could not read the request body");
        }
    };
    handler(Request { method: parts.method, uri: parts.uri, headers: parts.headers, body, peer }).await
}

pub fn response(status: http::StatusCode, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

pub fn json(status: http::StatusCode, body: &serde_json::Value) -> Response {
    response(status, &[("content-type", "application/json")], body.to_string())
}

pub fn text(status: http::StatusCode, body: &str) -> Response {
    response(status, &[("content-type", "text/plain; charset=utf-8")], body.to_owned())
}

/// A response as the client sees it.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the URL has no host and port: {0}")]
    Url(String),
}

/// One HTTP/1.1 request on a fresh connection (plain HTTP only: the local servers).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<ClientResponse, ClientError> {
    let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
    let authority =
        uri.authority().map(|a| a.as_str().to_owned()).ok_or_else(|| ClientError::Url(url.to_owned()))?;
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|source| ClientError::Connect { addr: authority.clone(), source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = hyper::Request::builder().method(method).uri(path).header("host", &authority);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender.send_request(builder.body(Full::new(body.into()))?).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    driver.abort();
    Ok(ClientResponse { status: parts.status.as_u16(), headers: parts.headers, body })
}
