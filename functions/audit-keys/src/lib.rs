//! `GET /.well-known/audit-keys.json`: the public key(s) that verify signed
//! audit checkpoints, as a JWKS (the offline verifier's only input besides
//! the exported bundle).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, _request| async move {
        let keys = caas::audit::trust::audit_keys(app).await?;
        Ok(Reply::ok(keys)?.with_header("cache-control", "public, max-age=300"))
    })
    .await
}
