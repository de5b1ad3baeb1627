//! `GET /.well-known/jwks.json`: the access-token verification key(s).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, _request| async move {
        let keys = caas::auth::service::jwks(app).await?;
        Ok(Reply::ok(keys)?.with_header("cache-control", "public, max-age=300"))
    })
    .await
}
