//! `GET /v1/conversations/{id}`: the conversation with its participants and
//! the caller's unread count; participants only (anyone else 404).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let conversation = caas::chat::conversations::get(app, &who, &id).await?;
        Ok(Reply::ok(conversation)?.with_header("cache-control", "no-store"))
    })
    .await
}
