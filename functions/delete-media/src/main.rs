#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas::runtime::serve_http_with_s3(delete_media::handler).await
}
