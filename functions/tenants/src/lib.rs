//! The `tenants` job: the operator's tenant administration, by direct invoke
//! only (IAM is the operator's authentication; no route, no schedule).
//! `{"action": "create" | "get" | "list" | "update" | "suspend" |
//! "reactivate" | "invite" | "set_overdraft_limit", ...}` (see `caas::access::tenants`); answers the
//! JSON result, and refuses bad input or an impossible change with an
//! invocation error that says why.

use caas::App;
use caas::access::tenants::{self, Command};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn handler(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    // The invocation's request id ties the events to the invocation (and to
    // CloudTrail's record of who invoked it).
    let correlation_id = match event.context.request_id.as_str() {
        "" => caas::ids::new_id(),
        id => id.to_owned(),
    };
    let command: Command = caas::http::from_value(event.payload)?;
    Ok(tenants::run(app, &correlation_id, command).await?)
}
