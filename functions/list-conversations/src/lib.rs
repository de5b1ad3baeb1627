//! `GET /v1/conversations?limit=&cursor=`: the caller's conversations, most
//! recent activity first, each with its unread count (limit 1..=100, default 20).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let limit = http::query_param(&request, "limit");
        let cursor = http::query_param(&request, "cursor");
        let page = caas::chat::conversations::list(app, &who, limit.as_deref(), cursor.as_deref()).await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
