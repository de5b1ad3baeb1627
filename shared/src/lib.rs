//! Domain crate of the CAAS core. Every Lambda function is a thin adapter over
//! the services in this crate.
//!
//! - pure domain: [`tenant`], [`auth::password`], [`auth::jwt`], [`auth::lockout`]
//! - the store: [`store`] (the only module that knows item layouts and expressions)
//!   with its one transaction builder [`store::tx`]
//! - services: [`auth::service`], [`auth::oauth`] (the token endpoint), [`access`]
//!   (tenants, invitations, users, machine clients)
//! - platform glue: [`config`], [`clients`], [`app`], [`telemetry`], [`http`], [`error`]

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod chat;
pub mod clients;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod integrity;
pub mod ledger;
pub mod metrics;
pub mod migrate;
pub mod money;
pub mod outbox;
pub mod paging;
pub mod payments;
pub mod privacy;
pub mod ratelimit;
pub mod runtime;
pub mod search;
pub mod signing;
pub mod sorted_json;
pub mod store;
pub mod telemetry;
pub mod tenant;

pub use app::App;
pub use error::AppError;
