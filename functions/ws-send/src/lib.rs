//! The WebSocket API's `send` route: `{"action": "send", "conversation_id",
//! "client_message_id", "body"}` posts a message as the connection's user,
//! exactly as `POST /v1/conversations/{id}/messages`; the answer frame is the
//! posted message (or the first answer again for a retried client message id).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use caas::App;
use caas::chat::realtime;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handler(
    app: &App,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    Ok(realtime::serve(event.payload, |event| async move {
        let outcome = realtime::send(app, &event).await?;
        Ok(realtime::posted_response(outcome))
    })
    .await)
}
