//! `GET /v1/sessions`: the caller's live sessions (created, last used, user
//! agent, which one is the current).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let sessions = caas::auth::service::list_sessions(app, &who).await?;
        Ok(Reply::ok(&sessions)?.with_header("cache-control", "no-store"))
    })
    .await
}
