//! `POST /v1/auth/mfa` `{mfa_token, code | recovery_code}`: the second step
//! of a login; returns the token pair.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let body = http::json_body(&request)?;
        let tokens = caas::auth::service::complete_sign_in(app, &context, body).await?;
        Ok(Reply::ok(&tokens)?.with_header("cache-control", "no-store"))
    })
    .await
}
