//! `DELETE /v1/clients/{id}`: an owner or admin revokes a machine client;
//! its secrets stop working at once.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let client_id = http::path_param(&request, "id")?;
        caas::access::clients::revoke(app, &context, &who, &client_id).await?;
        Ok(Reply::no_content())
    })
    .await
}
