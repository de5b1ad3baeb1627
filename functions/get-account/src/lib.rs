//! `GET /v1/accounts/{id}`: balances (posted, pending, available), strongly consistent.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let account_id = http::path_param(&request, "id")?;
        Reply::ok(caas::payments::accounts::get_account(app, &who, &account_id).await?)
    })
    .await
}
