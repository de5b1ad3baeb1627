//! `DELETE /v1/conversations/{id}/media/{media_id}`: deletes a media item and
//! its object (its uploader, the conversation's admins, the tenant's owners
//! and admins) → 204.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let media_id = http::path_param(&request, "media_id")?;
        caas::chat::media::delete(app, &context, &who, &id, &media_id).await?;
        Ok(Reply::no_content())
    })
    .await
}
