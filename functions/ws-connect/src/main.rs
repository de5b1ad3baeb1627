// The handler's future nests the SDK's calls deeply enough to pass the
// compiler's default query depth when its layout is computed.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas::runtime::serve_events(ws_connect::handler).await
}
