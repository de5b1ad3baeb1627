//! `POST /v1/payments/{id}/refunds`: refunds part or all of the captured amount (idempotent).

use caas::App;
use caas::http;
use caas::payments::http::{Command, handle};
use lambda_http::{Body, Error, Request, Response};

pub async fn handler(app: &App, request: Request) -> Result<Response<Body>, Error> {
    http::serve(request, |context, request| async move {
        handle(app, &context, &request, Command::RefundPayment).await
    })
    .await
}
