//! deliver: pushes the delivery queue's chat events to the participants'
//! live WebSocket connections (`PostToConnection`); a gone connection is
//! deleted. Partial failures are reported per message (FIFO: the rest of a
//! failed message's conversation fails with it). See [`caas::chat::delivery`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_apigatewaymanagement::Client;
use caas::App;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handler(
    app: &App,
    connections: &Client,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    // Boxed: the fan-out nests the SDK's paginated reads deeply.
    Ok(Box::pin(caas::chat::delivery::deliver(app, connections, &event.payload)).await?)
}
