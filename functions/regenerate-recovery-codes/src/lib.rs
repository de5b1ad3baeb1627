//! `POST /v1/mfa/recovery-codes`: a new set of recovery codes (in this
//! answer only); the old set no longer works.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let codes = caas::auth::service::regenerate_recovery_codes(app, &context, &who).await?;
        Ok(Reply::ok(&codes)?.with_header("cache-control", "no-store"))
    })
    .await
}
