//! `POST /v1/conversations/{id}/media` `{content_type, size}`: a participant
//! asks to upload a file → 201 with the pending media item and a presigned
//! S3 PUT (its signature covers the content type and the size).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let body = http::json_body(&request)?;
        let ticket = caas::chat::media::request_upload(app, &context, &who, &id, body).await?;
        Ok(Reply::created(ticket)?.with_header("cache-control", "no-store"))
    })
    .await
}
