//! `POST /v1/consents` `{purpose, version, granted}`: records the caller's
//! consent decision (a new entry of their history; an audit event). 201 with
//! the record; machine clients 403.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let consent = http::json_body(&request)?;
        let recorded = caas::privacy::consents::record(app, &context, &who, consent).await?;
        Ok(Reply::created(&recorded)?.with_header("cache-control", "no-store"))
    })
    .await
}
