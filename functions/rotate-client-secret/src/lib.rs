//! `POST /v1/clients/{id}/secret`: an owner or admin rotates a machine
//! client's secret. Answers the new secret once; the previous one keeps
//! working until `previous_secret_expires_at`.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let client_id = http::path_param(&request, "id")?;
        let rotated = caas::access::clients::rotate_secret(app, &context, &who, &client_id).await?;
        Ok(Reply::ok(&rotated)?.with_header("cache-control", "no-store"))
    })
    .await
}
