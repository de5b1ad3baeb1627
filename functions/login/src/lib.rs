//! `POST /v1/auth/login`: password login; returns an access and a refresh token.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let credentials = http::json_body(&request)?;
        let tokens = caas::auth::service::login(app, &context, credentials).await?;
        Ok(Reply::ok(&tokens)?.with_header("cache-control", "no-store"))
    })
    .await
}
