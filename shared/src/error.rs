//! The one error type of the services, mapped once to an RFC 9457 problem in
//! [`crate::http`]. Variants carry only what is safe to show or log.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input; `field` names the offending JSON path.
    #[error("{detail}")]
    BadRequest { field: Option<String>, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Authentication failed. The detail is deliberately generic.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed: a role-gated route, a resource the
    /// caller may see but not change, or a suspended tenant.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (duplicate, invalid transition).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but semantically impossible (e.g. refund beyond captured).
    #[error("{0}")]
    Unprocessable(String),
    /// The same idempotency key is being processed by another invocation.
    #[error("a request with this Idempotency-Key is still in progress")]
    InProgress { retry_after_seconds: u64 },
    /// A rate limit was reached; retry after the window ends.
    #[error("too many requests; retry in {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: u64 },
    /// Contention or throttling outlasted our bounded retries.
    #[error("{0}")]
    Unavailable(String),
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// An unexpected failure of a dependency or an invariant; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest { field: Some(field.into()), detail: detail.into() }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(detail.into())
    }

    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {error}"))
    }

    /// Maps an SDK failure once the SDK's own retries are spent: throttling,
    /// server errors (HTTP 5xx), timeouts and transport failures, a lost
    /// connection included, become 503 (retryable by the client: a write whose
    /// answer was lost is answered from its idempotency record on retry);
    /// everything else is internal.
    pub fn from_sdk<E>(
        context: &str,
        error: aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Self
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    {
        use aws_sdk_dynamodb::error::SdkError;
        match &error {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                Self::Unavailable(format!("{context}: dependency unavailable"))
            }
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown");
                if is_throttling(code) {
                    Self::Unavailable(format!("{context}: throttled"))
                } else if service.raw().status().is_server_error() {
                    Self::Unavailable(format!("{context}: dependency unavailable ({code})"))
                } else {
                    Self::Internal(format!("{context}: {code}: {}", service.err().message().unwrap_or("")))
                }
            }
            other => {
                Self::Internal(format!("{context}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(other)))
            }
        }
    }
}

/// Error codes (and transaction cancellation reason codes) of throttling.
pub fn is_throttling(code: &str) -> bool {
    code.contains("Throttl")
        || code.starts_with("ProvisionedThroughputExceeded")
        || code == "RequestLimitExceeded"
}
