//! `POST /v1/oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749
//! §4.4) for machine clients. Errors are RFC 6749 §5.2 JSON, not problems.

use caas::App;
use caas::auth::oauth;
use caas::http;
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve_with(
        request,
        |_context, request| async move { oauth::token(app, &request).await },
        oauth::error_response,
    )
    .await
}
