//! `POST /v1/conversations/{id}/participants` `{user_ids, admin?}`: adds users
//! of the tenant to a group (its admins, the tenant's owners and admins) →
//! the conversation.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let add = http::json_body(&request)?;
        let conversation = caas::chat::conversations::add(app, &context, &who, &id, add).await?;
        Ok(Reply::ok(conversation)?.with_header("cache-control", "no-store"))
    })
    .await
}
