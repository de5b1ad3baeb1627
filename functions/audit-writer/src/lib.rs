//! audit-writer: appends the events queue's envelopes to each tenant's hash
//! chain. Partial failures are reported per message (FIFO: the rest of a
//! failed message's group fails with it). See [`caas::audit::service`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use caas::App;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handler(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(caas::audit::append_messages(app, &event.payload).await?)
}
