//! `POST /v1/conversations` `{type: direct|group, participants, title?, admins?}`:
//! 201 with the new conversation; a direct conversation that exists already
//! (one per pair of users) is answered with 200.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let create = http::json_body(&request)?;
        let created = caas::chat::conversations::create(app, &context, &who, create).await?;
        let reply = if created.created {
            Reply::created(&created.conversation)?
        } else {
            Reply::ok(&created.conversation)?
        };
        Ok(reply.with_header("cache-control", "no-store"))
    })
    .await
}
