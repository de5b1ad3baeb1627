//! `GET /v1/consents?limit=&cursor=`: the caller's consent history, newest
//! first (the first record of a purpose is its current state; limit 1..=200,
//! default 50); machine clients 403.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let limit = http::query_param(&request, "limit");
        let cursor = http::query_param(&request, "cursor");
        let page = caas::privacy::consents::list(app, &who, limit.as_deref(), cursor.as_deref()).await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
