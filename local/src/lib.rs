//! The local side of the project's infrastructure: reads `template.yaml` and provisions
//! its tables, keys, queues and buckets on whatever endpoint the SDK configuration points at (the
//! emulator in tests and on a developer's machine), and resolves each function's
//! environment against what was created, so nothing keeps a second copy of the
//! infrastructure.
//!
//! [`run()`] runs the whole stack locally on top of that: every function as its compiled
//! binary behind a Lambda Runtime API emulator, the HTTP API (payload format 2.0), the
//! WebSocket API with its `@connections` management endpoint, the Lambda Invoke API,
//! and the event source mappings (stream and queue pollers,
//! schedules). The `caas-local` binary is its command line; `caas-local ws` is a small
//! WebSocket client of the local WebSocket API ([`ws_client`]).
//!
//! [`events`] is how both the local stack's pollers and the integration tests turn
//! stream records and queue messages into Lambda events and apply `FilterCriteria`.
//!
//! Modules, by concern:
//! - the template: `template` (parsing, with `template/yaml` for the YAML and its
//!   short-form intrinsics and `template/functions` for the functions and their
//!   events), `props` (typed property reads);
//! - the stack: `stack` (created resources, `ACCOUNT_ID`, the resolution context),
//!   `resolve` (intrinsic functions), `env` (a function's environment), `provision`
//!   (creation order and teardown; `table`, `key`, `queue` create each kind);
//! - running functions: `runtime_api` (one instance behind its Runtime API, served by
//!   `runtime_api/server`), `functions` (instances per function, the console);
//! - what invokes them: `http_api` (`routes`, the `event` sent, the rendered answer),
//!   `websocket_api` (the WebSocket API: handshake, routing, the `event`s sent, the
//!   `management` API's `@connections`), `invoke_api`, `pollers` (`stream`, `queue`), `events`, `filter`, `schedule`;
//! - `run`: one run's session (`aws`: emulator and settings, `persist`, `wiring`,
//!   `servers`, `banner`); `http`: the HTTP plumbing the servers share.

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
pub mod websocket_api;
pub mod ws_client;

pub use error::LocalError;
pub use pollers::{StreamBatch, StreamReader};
pub use provision::{emulator_sdk_config, provision, random_suffix};
pub use run::{Options, RunError, run};
pub use stack::{ACCOUNT_ID, Physical, ResourceKind, Stack};
pub use template::{EventSource, FunctionSpec, HttpRoute, Template, WebSocketApi, WebSocketRoute};
