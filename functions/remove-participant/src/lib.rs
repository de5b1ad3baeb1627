//! `DELETE /v1/conversations/{id}/participants/{user_id}`: removes a
//! participant from a group (its admins, the tenant's owners and admins; or
//! the participant themself) → 204.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let id = http::path_param(&request, "id")?;
        let user_id = http::path_param(&request, "user_id")?;
        caas::chat::conversations::remove(app, &context, &who, &id, &user_id).await?;
        Ok(Reply::no_content())
    })
    .await
}
