#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas::runtime::serve_http(audit_keys::handler).await
}
