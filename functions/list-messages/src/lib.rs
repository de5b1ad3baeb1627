//! `GET /v1/conversations/{id}/messages?before=&after=&limit=`: a page of
//! messages, oldest first (limit 1..=100, default 50); participants only.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let before = http::query_param(&request, "before");
        let after = http::query_param(&request, "after");
        let limit = http::query_param(&request, "limit");
        let page =
            caas::chat::messages::list(app, &who, &id, before.as_deref(), after.as_deref(), limit.as_deref())
                .await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
