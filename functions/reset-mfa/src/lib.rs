//! `DELETE /v1/users/{id}/mfa`: an owner or admin removes a user's second
//! factor (audited).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let user_id = http::path_param(&request, "id")?;
        caas::auth::service::reset_mfa(app, &context, &who, &user_id).await?;
        Ok(Reply::no_content())
    })
    .await
}
