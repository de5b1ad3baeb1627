//! `GET /v1/accounts/{id}/transactions?limit=&cursor=`: ledger entries, newest first.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let account_id = http::path_param(&request, "id")?;
        let limit = http::query_param(&request, "limit");
        let cursor = http::query_param(&request, "cursor");
        let page = caas::payments::accounts::list_transactions(
            app,
            &who,
            &account_id,
            limit.as_deref(),
            cursor.as_deref(),
        )
        .await?;
        Reply::ok(page)
    })
    .await
}
