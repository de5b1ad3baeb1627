//! `POST /v1/auth/logout`: revokes the session (token family) of a refresh token.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let body = http::json_body(&request)?;
        caas::auth::service::logout(app, &context, body).await?;
        Ok(Reply::no_content())
    })
    .await
}
