//! index-search: applies the search queue's events to the search index
//! (each event's message or person read from the table and indexed as it is
//! now). Partial failures are reported per message (FIFO: the rest of a
//! failed message's tenant fails with it). See [`caas::search::indexer`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use caas::App;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handler(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(caas::search::indexer::index_messages(app, &event.payload).await?)
}
