//! `POST /v1/conversations/{id}/messages` `{client_message_id, body}`: posts a
//! message at the conversation's next sequence number → 201; a retry with the
//! same client message id answers the first post (`Idempotent-Replayed: true`).

use caas::App;
use caas::http;
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let body: serde_json::Value = http::json_body(&request)?;
        let outcome = caas::chat::messages::post(app, &context, &who, &id, body).await?;
        Ok(outcome.into_reply()?.with_header("cache-control", "no-store"))
    })
    .await
}
