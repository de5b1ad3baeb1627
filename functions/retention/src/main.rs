// The job's future nests the SDK's paginated reads deeply enough to pass the
// compiler's default query depth when its layout is computed.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas::runtime::serve_events(retention::handler).await
}
