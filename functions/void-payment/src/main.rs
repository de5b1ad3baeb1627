#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas::runtime::serve_http(void_payment::handler).await
}
