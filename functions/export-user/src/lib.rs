//! `GET /v1/users/{id}/export`: everything held about a person as JSON, for
//! the person or an owner or admin of their tenant.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let user_id = http::path_param(&request, "id")?;
        Reply::ok(caas::privacy::export::export(app, &who, &user_id).await?)
    })
    .await
}
