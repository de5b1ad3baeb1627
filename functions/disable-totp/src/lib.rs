//! `POST /v1/mfa/totp/disable` `{password, code}`: removes the caller's
//! second factor.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let body = http::json_body(&request)?;
        caas::auth::service::disable_totp(app, &context, &who, body).await?;
        Ok(Reply::no_content())
    })
    .await
}
