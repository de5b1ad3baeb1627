#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas::runtime::serve_events(index_search::handler).await
}
