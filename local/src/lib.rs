//! The local side of the project's infrastructure: reads `template.yaml` and provisions
//! its tables, keys and queues on whatever endpoint the SDK configuration points at (the
//! emulator in tests and on a developer's machine), and resolves each function's
//! environment against what was created, so nothing keeps a second copy of the
//! infrastructure.
//!
//! [`run`] runs the whole stack locally on top of that: every function as its compiled
//! binary behind a Lambda Runtime API emulator, the HTTP API (payload format 2.0), the
//! Lambda Invoke API, and the event source mappings (stream and queue pollers,
//! schedules). The `caas-local` binary is its command line.

mod env;
mod error;
pub mod events;
pub mod filter;
mod functions;
pub mod http;
pub mod http_api;
mod invoke_api;
mod pollers;
mod props;
mod provision;
mod resolve;
pub mod run;
mod runtime_api;
mod schedule;
mod stack;
mod template;

pub use error::LocalError;
pub use provision::{emulator_sdk_config, provision, random_suffix};
pub use run::{Options, RunError, run};
pub use stack::{ACCOUNT_ID, Physical, ResourceKind, Stack};
pub use template::{EventSource, FunctionSpec, HttpRoute, Template};
