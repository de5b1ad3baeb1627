//! The local side of the project's infrastructure: reads `template.yaml` and provisions
//! its tables, keys and queues on whatever endpoint the SDK configuration points at (the
//! emulator in tests and on a developer's machine), and resolves each function's
//! environment against what was created, so nothing keeps a second copy of the
//! infrastructure.

mod error;
mod props;
mod provision;
mod resolve;
mod template;

pub use error::LocalError;
pub use provision::{Physical, ResourceKind, Stack, emulator_sdk_config, provision, random_suffix};
pub use resolve::ACCOUNT_ID;
pub use template::{EventSource, FunctionSpec, HttpRoute, Template};
