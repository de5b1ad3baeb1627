//! `DELETE /v1/users/{id}` `{password?}`: erases a user by crypto-shredding
//! (their key deleted, their user item and directory entry with it, their
//! sessions ended, the erasure listed for restores): the user themselves
//! with their password, or an owner or admin of the tenant.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let user_id = http::path_param(&request, "id")?;
        // The body is optional (an administrator's erasure has none).
        let body = http::from_value(http::optional_json_body(&request)?)?;
        caas::privacy::erasure::erase(app, &context, &who, &user_id, body).await?;
        Ok(Reply::no_content())
    })
    .await
}
