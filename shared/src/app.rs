//! Everything a handler needs, built once per container.

use crate::auth::keys::KeyCache;
use crate::clients::Clients;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub clients: Clients,
    pub clock: Arc<dyn Clock>,
    /// The published token keys and the signing key id, fetched from KMS
    /// and kept for a few minutes per container.
    pub(crate) token_keys: KeyCache,
    /// The audit checkpoint public key, fetched from KMS once per container.
    pub(crate) audit_key: tokio::sync::OnceCell<crate::auth::jwt::TokenKey>,
    /// The email lookup key, derived from the KMS HMAC key once per container
    /// ([`crate::privacy::lookup`]).
    pub(crate) lookup_key: tokio::sync::OnceCell<crate::privacy::lookup::LookupKey>,
}

impl App {
    pub fn new(config: Config, clients: Clients) -> Self {
        Self::with_clock(config, clients, Arc::new(SystemClock))
    }

    pub fn with_clock(config: Config, clients: Clients, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clients,
            clock,
            token_keys: KeyCache::default(),
            audit_key: Default::default(),
            lookup_key: Default::default(),
        }
    }

    /// The production wiring used by every function's `main`: JSON logs,
    /// configuration from the environment, SDK clients from the default chain.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        crate::telemetry::init();
        let config = Config::from_env()?;
        Ok(Self::new(config, Clients::from_env().await))
    }

    /// [`App::from_env`] with an S3 client: the media functions' wiring.
    pub async fn from_env_with_s3() -> Result<Self, crate::config::ConfigError> {
        crate::telemetry::init();
        let config = Config::from_env()?;
        let sdk = crate::clients::load_sdk_config().await;
        Ok(Self::new(config, Clients::from_sdk_config(&sdk).with_s3(&sdk)))
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
