//! `POST /v1/clients` `{name, roles}`: an owner or admin creates a machine
//! client of their tenant. Answers its id and secret, the secret once.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let client = http::json_body(&request)?;
        let issued = caas::access::clients::create(app, &context, &who, client).await?;
        Ok(Reply::created(&issued)?.with_header("cache-control", "no-store"))
    })
    .await
}
