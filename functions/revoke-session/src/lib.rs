//! `DELETE /v1/sessions/{id}`: ends one of the caller's sessions.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let session_id = http::path_param(&request, "id")?;
        caas::auth::service::revoke_session(app, &context, &who, &session_id).await?;
        Ok(Reply::no_content())
    })
    .await
}
