//! `PATCH /v1/users/{id}` `{role?, status?}`: an owner or admin changes a
//! user's role or status; the user's refresh tokens are revoked with it.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let user_id = http::path_param(&request, "id")?;
        let change = http::json_body(&request)?;
        Reply::ok(caas::access::users::update(app, &context, &who, &user_id, change).await?)
    })
    .await
}
