//! `POST /v1/mfa/totp/confirm` `{code}`: activates the enrolment; the ten
//! recovery codes (and, after an enrolment-only `mfa_token`, the token pair)
//! are in this answer only.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let code = http::json_body(&request)?;
        let confirmed = caas::auth::service::confirm_totp(app, &context, &request, code).await?;
        Ok(Reply::ok(&confirmed)?.with_header("cache-control", "no-store"))
    })
    .await
}
