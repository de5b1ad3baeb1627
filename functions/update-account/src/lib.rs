//! `PATCH /v1/accounts/{id}` `{status?, overdraft_limit?}`: an owner or admin
//! freezes, reactivates or closes an account, or changes its overdraft limit.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let account_id = http::path_param(&request, "id")?;
        let change = http::json_body(&request)?;
        Reply::ok(caas::payments::accounts::update_account(app, &context, &who, &account_id, change).await?)
    })
    .await
}
