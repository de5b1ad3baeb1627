//! `GET /v1/payments/{id}`: the payment with its event history.

use caas::App;
use caas::http::{self, Reply};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |_context, request| async move {
        let who = caas::auth::authenticate(app, &request).await?;
        let payment_id = http::path_param(&request, "id")?;
        Reply::ok(caas::payments::service::get_payment(app, &who, &payment_id).await?)
    })
    .await
}
