//! The WebSocket API's `$disconnect`: forgets the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use caas::App;
use caas::chat::realtime;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handler(
    app: &App,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    Ok(realtime::serve(event.payload, |event| async move {
        realtime::disconnect(app, &event).await?;
        Ok(realtime::response(200, None))
    })
    .await)
}
