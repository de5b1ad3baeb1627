//! `POST /v1/conversations/{id}/leave`: the caller leaves a group → 204.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        caas::chat::conversations::leave(app, &context, &who, &id).await?;
        Ok(Reply::no_content())
    })
    .await
}
