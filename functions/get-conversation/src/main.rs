#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas::runtime::serve_http(get_conversation::handler).await
}
