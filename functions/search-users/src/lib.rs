//! `GET /v1/search/users?q=&limit=&cursor=`: people of the tenant's directory by display name
//! (limit 1..=50, default 20). See [`caas::search::queries::people`].

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let q = http::query_param(&request, "q");
        let limit = http::query_param(&request, "limit");
        let cursor = http::query_param(&request, "cursor");
        let page =
            caas::search::queries::people(app, &who, q.as_deref(), limit.as_deref(), cursor.as_deref())
                .await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
