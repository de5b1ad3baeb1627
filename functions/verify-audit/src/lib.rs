//! `GET /v1/audit/verify`: re-hashes the caller's tenant's audit chain
//! against its signed checkpoints and answers `{ok, entries_checked,
//! first_broken_seq?, checkpoint_seq?, ...}`; owners, admins and auditors
//! only (403).

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let caller = caas::auth::service::authenticate(app, &request).await?;
        caas::audit::require_reader(&caller)?;
        let report = caas::audit::trust::verify_live(app, &caller.tenant).await?;
        Ok(Reply::ok(report)?.with_header("cache-control", "no-store"))
    })
    .await
}
