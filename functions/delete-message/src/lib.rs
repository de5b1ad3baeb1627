//! `DELETE /v1/conversations/{id}/messages/{seq}`: tombstones a message (its
//! author, the conversation's admins, the tenant's owners and admins) → 204.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let seq = http::path_param(&request, "seq")?;
        caas::chat::messages::delete(app, &context, &who, &id, &seq).await?;
        Ok(Reply::no_content())
    })
    .await
}
