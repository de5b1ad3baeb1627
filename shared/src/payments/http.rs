//! The payments API's idempotent POST commands as HTTP requests: which
//! command, its idempotency scope, and the request → service → reply path.

use super::{accounts, service};
use crate::app::App;
use crate::error::AppError;
use crate::http::{self as api, Reply, RequestContext};
use crate::idempotency::{self, Idempotent};

/// The idempotent POST commands of the payments API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    CreateAccount,
    CreatePayment,
    CapturePayment,
    VoidPayment,
    RefundPayment,
}

impl Command {
    /// The idempotency scope: keys are unique per tenant and operation.
    pub fn operation(&self) -> &'static str {
        match self {
            Command::CreateAccount => "create-account",
            Command::CreatePayment => "create-payment",
            Command::CapturePayment => "capture-payment",
            Command::VoidPayment => "void-payment",
            Command::RefundPayment => "refund-payment",
        }
    }
}

/// Runs one command from an API request: authenticate (the tenant comes from
/// the token, never the body), read the Idempotency-Key and the body, execute.
pub async fn handle(
    app: &App,
    ctx: &RequestContext,
    request: &lambda_http::Request,
    command: Command,
) -> Result<Reply, AppError> {
    let who = crate::auth::authenticate(app, request).await?;
    let target = match command {
        Command::CreateAccount | Command::CreatePayment => String::new(),
        _ => api::path_param(request, "id")?,
    };
    let key = idempotency::key_from(request)?;
    let body = match command {
        Command::CapturePayment | Command::VoidPayment => api::optional_json_body(request)?,
        _ => api::json_body(request)?,
    };
    let idempotent = Idempotent::new(&who, command.operation(), key, &target, &body);
    let outcome = match command {
        Command::CreateAccount => accounts::create_account(app, ctx, &idempotent, body).await?,
        Command::CreatePayment => service::create_payment(app, ctx, &idempotent, body).await?,
        Command::CapturePayment => service::capture_payment(app, ctx, &idempotent, &target, body).await?,
        Command::VoidPayment => service::void_payment(app, ctx, &idempotent, &target, body).await?,
        Command::RefundPayment => service::refund_payment(app, ctx, &idempotent, &target, body).await?,
    };
    outcome.into_reply()
}
