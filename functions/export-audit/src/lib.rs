//! `GET /v1/audit/export?after_seq=&limit=`: the caller's tenant's audit
//! bundle — every signed checkpoint and a page of entries (limit 1..=1000,
//! default 1000) — for the offline verifier; owners, admins and auditors
//! only (403).

use caas::App;
use caas::audit::ListQuery;
use caas::audit::trust::{DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT};
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, RequestExt, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let caller = caas::auth::service::authenticate(app, &request).await?;
        caas::audit::require_reader(&caller)?;
        let params = request.query_string_parameters_ref();
        let query = ListQuery::parse_bounded(
            params.and_then(|p| p.first("after_seq")),
            params.and_then(|p| p.first("limit")),
            DEFAULT_EXPORT_LIMIT,
            MAX_EXPORT_LIMIT,
        )?;
        let bundle = caas::audit::trust::export(app, &caller.tenant, query.after_seq, query.limit).await?;
        Ok(Reply::ok(bundle)?.with_header("cache-control", "no-store"))
    })
    .await
}
