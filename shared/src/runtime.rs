//! The `main` of every function: build the [`App`] once per container (init
//! phase), then serve invocations with it. The App lives as long as the
//! process, so it is leaked once to hand out `&'static` references.

use crate::app::App;
use lambda_http::{Body, Request, Response};
use std::future::Future;

fn leak(app: App) -> &'static App {
    Box::leak(Box::new(app))
}

/// Runs an API Gateway HTTP API function.
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, lambda_http::Error>> + Send,
{
    let app = leak(App::from_env().await?);
    lambda_http::run(lambda_http::service_fn(move |request| handler(app, request))).await
}

/// Runs an HTTP API function that also needs S3 (the media functions).
pub async fn serve_http_with_s3<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, lambda_http::Error>> + Send,
{
    let app = leak(App::from_env_with_s3().await?);
    lambda_http::run(lambda_http::service_fn(move |request| handler(app, request))).await
}

/// Runs a job function (queue, stream, schedule or direct invoke).
pub async fn serve_events<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned,
    R: serde::Serialize,
    F: Fn(&'static App, lambda_runtime::LambdaEvent<E>) -> Fut,
    Fut: Future<Output = Result<R, lambda_runtime::Error>>,
{
    let app = leak(App::from_env().await?);
    lambda_runtime::run(lambda_runtime::service_fn(move |event| handler(app, event))).await
}

/// Runs a job function that needs a client of its own besides the [`App`]'s
/// (built once per container by `extra`, like the App), so that no other
/// function builds it.
pub async fn serve_events_with<C, X, XFut, E, R, F, Fut>(
    extra: X,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    C: 'static,
    X: FnOnce(&'static App) -> XFut,
    XFut: Future<Output = Result<C, crate::config::ConfigError>>,
    E: serde::de::DeserializeOwned,
    R: serde::Serialize,
    F: Fn(&'static App, &'static C, lambda_runtime::LambdaEvent<E>) -> Fut,
    Fut: Future<Output = Result<R, lambda_runtime::Error>>,
{
    let app = leak(App::from_env().await?);
    let client: &'static C = Box::leak(Box::new(extra(app).await?));
    lambda_runtime::run(lambda_runtime::service_fn(move |event| handler(app, client, event))).await
}
