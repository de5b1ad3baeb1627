//! `PATCH /v1/conversations/{id}/messages/{seq}` `{body}`: its author changes
//! a message's text → 204.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let seq = http::path_param(&request, "seq")?;
        let edit = http::json_body(&request)?;
        caas::chat::messages::edit(app, &context, &who, &id, &seq, edit).await?;
        Ok(Reply::no_content())
    })
    .await
}
