//! `POST /v1/auth/logout-all`: ends every session of the caller.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        caas::auth::service::logout_all(app, &context, &who).await?;
        Ok(Reply::no_content())
    })
    .await
}
