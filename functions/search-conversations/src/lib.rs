//! `GET /v1/search/conversations?q=&limit=&cursor=`: the caller's conversations by title and by participants' display names, most recent activity first
//! (limit 1..=50, default 20). See [`caas::search::queries::conversations`].

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let q = http::query_param(&request, "q");
        let limit = http::query_param(&request, "limit");
        let cursor = http::query_param(&request, "cursor");
        let page = caas::search::queries::conversations(
            app,
            &who,
            q.as_deref(),
            limit.as_deref(),
            cursor.as_deref(),
        )
        .await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
