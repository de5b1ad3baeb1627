//! `GET /v1/accounts/{id}/statement?from=&to=&limit=&cursor=`: opening
//! balance, the period's entries oldest first (paged), closing balance.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let account_id = http::path_param(&request, "id")?;
        let param = |name| http::query_param(&request, name);
        let (from, to, limit, cursor) = (param("from"), param("to"), param("limit"), param("cursor"));
        let period = (from.as_deref(), to.as_deref());
        let page = (limit.as_deref(), cursor.as_deref());
        Reply::ok(caas::payments::statements::statement(app, &who, &account_id, period, page).await?)
    })
    .await
}
