//! AWS clients, built once per container in `main` and shared by reference.
//! Retries (with backoff and jitter) and timeouts are the SDK's own; HTTPS is
//! hyper with rustls on the `ring` crypto provider ([`http_client`]).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Only the media functions build one ([`Clients::with_s3`]); every
    /// other function's bundle holds no S3 client.
    pub s3: Option<aws_sdk_s3::Client>,
}

/// The HTTP client of every AWS client: rustls with `ring` and the system's
/// root certificates. (The SDK's default client uses rustls on aws-lc, which
/// no function needs and which makes every bundle larger.)
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The SDK configuration of every function, from the environment Lambda gives
/// it: the region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the execution
/// role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), and an endpoint only when `AWS_ENDPOINT_URL` names one
/// (the emulator); with our HTTP client and our retry and timeout policy.
///
/// Not `aws_config::defaults(..).load()`: its provider chains (profile files,
/// web identity through STS, SSO, ECS and EC2 metadata) read sources a Lambda
/// function never has, and compile about 1 MiB into every arm64 bundle
/// (docs/BENCHMARKS.md section 9).
pub async fn load_sdk_config() -> SdkConfig {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).map(Region::new);
    let mut builder = SdkConfig::builder();
    builder.set_region(region);
    builder.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    builder
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(http_client())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(25))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build(),
        )
        .build()
}

impl Clients {
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&load_sdk_config().await)
    }

    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: None,
        }
    }

    /// These clients and an S3 client ([`s3_config`]).
    pub fn with_s3(mut self, sdk: &SdkConfig) -> Self {
        self.s3 = Some(aws_sdk_s3::Client::from_conf(s3_config(sdk).build()));
        self
    }
}

/// The S3 client's configuration: path-style addressing when an endpoint is
/// configured (the emulator serves every bucket at one address), checksums
/// only where S3 requires them (a presigned PUT then names no checksum the
/// browser would have to compute).
pub fn s3_config(sdk: &SdkConfig) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
}
