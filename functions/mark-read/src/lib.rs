//! `POST /v1/conversations/{id}/read` `{seq}`: the caller has read up to `seq`
//! → `{conversation_id, last_read_seq}` (never moves back).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let read = http::json_body(&request)?;
        let state = caas::chat::messages::mark_read(app, &context, &who, &id, read).await?;
        Ok(Reply::ok(state)?.with_header("cache-control", "no-store"))
    })
    .await
}
