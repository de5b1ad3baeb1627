//! `GET /v1/accounts/{id}/balance?at=`: the account's balance at a time
//! (default: now), from its latest daily snapshot and the entries since.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let account_id = http::path_param(&request, "id")?;
        let at = http::query_param(&request, "at");
        Reply::ok(caas::payments::statements::balance_at(app, &who, &account_id, at.as_deref()).await?)
    })
    .await
}
