#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas::runtime::serve_http(remove_participant::handler).await
}
