//! `POST /v1/auth/password` `{current_password, new_password}`: changes the
//! caller's password; every other session ends, this one gets new tokens.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let change = http::json_body(&request)?;
        let tokens = caas::auth::service::change_password(app, &context, &who, change).await?;
        Ok(Reply::ok(&tokens)?.with_header("cache-control", "no-store"))
    })
    .await
}
