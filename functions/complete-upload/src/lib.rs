//! `POST /v1/conversations/{id}/media/{media_id}/complete`: the uploader's
//! upload is checked against its declaration (size, content type) and made
//! attachable → 200 with the media item; not as declared: 422, the object deleted.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let media_id = http::path_param(&request, "media_id")?;
        let media = caas::chat::media::complete(app, &context, &who, &id, &media_id).await?;
        Ok(Reply::ok(media)?.with_header("cache-control", "no-store"))
    })
    .await
}
