//! `GET /v1/conversations/{id}/media/{media_id}`: a media item and, once
//! completed, a short-lived presigned download URL; participants only
//! (anyone else 404).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let media_id = http::path_param(&request, "media_id")?;
        let media = caas::chat::media::get(app, &who, &id, &media_id).await?;
        Ok(Reply::ok(media)?.with_header("cache-control", "no-store"))
    })
    .await
}
