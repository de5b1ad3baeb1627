#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas::runtime::serve_events_with(
        |app| caas::chat::delivery::connections_client(&app.config),
        deliver::handler,
    )
    .await
}
