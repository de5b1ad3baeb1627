//! `GET /v1/me`: who the caller is (id, kind, tenant, roles), from the
//! verified access token alone.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        Ok(Reply::ok(caas::access::users::me(&who))?.with_header("cache-control", "no-store"))
    })
    .await
}
