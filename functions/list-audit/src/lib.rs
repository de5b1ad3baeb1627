//! `GET /v1/audit/events?after_seq=&limit=`: a page of the caller's tenant's
//! audit entries in seq order (limit 1..=200, default 50); owners, admins and
//! auditors only (403).

use caas::App;
use caas::audit::ListQuery;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, RequestExt, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let caller = caas::auth::service::authenticate(app, &request).await?;
        caas::audit::require_reader(&caller)?;
        let params = request.query_string_parameters_ref();
        let query = ListQuery::parse(
            params.and_then(|p| p.first("after_seq")),
            params.and_then(|p| p.first("limit")),
        )?;
        let page = caas::audit::list(app, &caller.tenant, query).await?;
        Ok(Reply::ok(page)?.with_header("cache-control", "no-store"))
    })
    .await
}
