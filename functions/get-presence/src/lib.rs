//! `GET /v1/conversations/{id}/presence`: which participants are online
//! (have a live WebSocket connection); participants only (anyone else 404).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let presence = caas::chat::presence::of_conversation(app, &who, &id).await?;
        Ok(Reply::ok(presence)?.with_header("cache-control", "no-store"))
    })
    .await
}
