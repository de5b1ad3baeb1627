//! outbox-drain: publishes outbox events to the SQS FIFO events queue.
//! Invoked by the table's stream (template.yaml filters it to new outbox
//! items) and by a schedule with `{"action":"sweep"}` for items the stream
//! missed. See [`caas::outbox::drain`].

use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use caas::App;
use caas::outbox::drain::{self, Invocation, Output, SweepReport, SweepRequest};
use lambda_runtime::{Error, LambdaEvent};

/// A stream batch: failed records come back as `batchItemFailures`.
pub async fn handler(app: &App, event: LambdaEvent<dynamodb::Event>) -> Result<DynamoDbEventResponse, Error> {
    // Boxed: the future is deep enough to overflow type layout limits inline.
    Ok(Box::pin(drain::drain_stream(app, &event.payload)).await?)
}

/// The scheduled sweep.
pub async fn sweep(app: &App, event: LambdaEvent<SweepRequest>) -> Result<SweepReport, Error> {
    Ok(Box::pin(drain::sweep(app, &event.payload)).await?)
}

/// The function's entry point: either invocation, told apart by its shape.
pub async fn dispatch(app: &App, event: LambdaEvent<Invocation>) -> Result<Output, Error> {
    let (payload, context) = event.into_parts();
    Ok(match payload {
        Invocation::Stream(records) => {
            Output::Stream(handler(app, LambdaEvent::new(records, context)).await?)
        }
        Invocation::Sweep(request) => Output::Sweep(sweep(app, LambdaEvent::new(request, context)).await?),
    })
}
