//! The bench's errors: setup that went wrong stops the run with a message;
//! timings never fail it.

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{function}: expected status {expected}, got {status}: {body}")]
    Status { function: String, expected: u16, status: u16, body: String },
    #[error("{0}: the handler returned an error: {1}")]
    Handler(String, String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Setup(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;
