//! `POST /v1/mfa/totp`: starts a TOTP enrolment; the secret (and its
//! `otpauth://` URI) is in this answer only.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let enrolment = caas::auth::service::enrol_totp(app, &context, &request).await?;
        Ok(Reply::ok(&enrolment)?.with_header("cache-control", "no-store"))
    })
    .await
}
