//! `POST /v1/users`: registers a user in a tenant.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let credentials = http::json_body(&request)?;
        let user = caas::auth::service::register(app, &context, credentials).await?;
        let location = format!("/v1/users/{}", user.user_id);
        Ok(Reply::created(&user)?.with_header("location", location))
    })
    .await
}
