//! `POST /v1/invitations` `{email, role}`: an owner or admin invites someone
//! into their tenant (only an owner invites an owner). Answers the one-time
//! token.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let invitation = http::json_body(&request)?;
        let issued = caas::access::invitations::invite(app, &context, &who, invitation).await?;
        Ok(Reply::created(&issued)?.with_header("cache-control", "no-store"))
    })
    .await
}
