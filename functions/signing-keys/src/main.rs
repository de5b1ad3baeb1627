#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas::runtime::serve_events(signing_keys::handler).await
}
