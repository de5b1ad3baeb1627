//! A cancelled transaction does not stall the table's stream. Register a user
//! (201), the same email again (409: the transaction is cancelled), then another
//! user (201): the second user's `user.registered` still reaches outbox-drain,
//! and nothing of the cancelled transaction does — DynamoDB streams no record of
//! a cancelled transaction.
//!
//! The real register and outbox-drain handlers run in this process; the stream is
//! read by the local stack's stream event source reader (`caas_local::StreamReader`:
//! shard iterators kept and followed like Lambda's event source mapping, the
//! function's `FilterCriteria` from template.yaml), running beside the requests.

use aws_lambda_events::event::dynamodb;
use caas::outbox::OutboxEvent;
use caas_tests::triggers::outbox_drain_stream_reader;
use caas_tests::*;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";
const TENANT: &str = "acme";
/// A generous bound for an event to reach the drain (the reader polls every 250 ms).
const WITHIN: Duration = Duration::from_secs(60);

async fn register(stack: &TestStack, email: &str) -> (u16, Value) {
    let app = stack.app("RegisterFunction");
    let body = json!({"tenant_id": TENANT, "email": email, "password": PASSWORD});
    let request = json_request("POST", "/v1/users", &body);
    parts(&register::handler(&app, request).await.expect("register answers"))
}

/// The outbox events outbox-drain has taken (its answer reported them processed),
/// in the order the stream delivered them.
type Drained = Arc<Mutex<Vec<OutboxEvent>>>;

/// OutboxDrainFunction's stream trigger as the local stack runs it, calling the
/// drain's handler in process; the future runs until dropped. (It runs beside the
/// requests in the test's own task: the drain's future is not `Send`.)
fn outbox_drain_trigger(stack: &TestStack) -> (impl Future<Output = ()> + use<>, Drained) {
    let mut reader = outbox_drain_stream_reader(stack);
    let client = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let app = stack.app("OutboxDrainFunction");
    let drained = Drained::default();
    let taken = drained.clone();
    let trigger = async move {
        loop {
            let batch = match reader.next_batch(&client).await {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(message) => panic!("DescribeStream failed: {message}"),
            };
            let mut event = dynamodb::Event::default();
            event.records = batch.records;
            let events: Vec<Option<OutboxEvent>> = event
                .records
                .iter()
                .map(|r| {
                    if r.event_name != "INSERT" {
                        return None;
                    }
                    caas::store::outbox::event_from_image(r.change.new_image.clone()).expect("outbox image")
                })
                .collect();
            let response = outbox_drain::handler(&app, LambdaEvent::new(event, Context::default()))
                .await
                .expect("outbox-drain answers");
            // Lambda's checkpoint: before the lowest failed record.
            let done = response
                .batch_item_failures
                .iter()
                .filter_map(|f| {
                    batch.sequence_numbers.iter().position(|s| Some(s) == f.item_identifier.as_ref())
                })
                .min()
                .unwrap_or(events.len());
            // The tenant's own setup events (created before the steps) are not the steps'.
            taken.lock().unwrap().extend(events.into_iter().take(done).flatten().filter(|e| !is_setup(e)));
            reader.checkpoint(&batch.shard_id, done);
            if done < batch.sequence_numbers.len() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    (trigger, drained)
}

fn registered(event: &OutboxEvent, user_id: &str) -> bool {
    event.event_type == "user.registered" && event.aggregate_id == user_id
}

fn summary(drained: &Drained) -> Vec<(String, String)> {
    let events = drained.lock().unwrap();
    events.iter().map(|e| (e.event_type.clone(), e.aggregate_id.clone())).collect()
}

/// Waits until outbox-drain has taken `user_id`'s `user.registered`.
async fn wait_until_drained(drained: &Drained, user_id: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !drained.lock().unwrap().iter().any(|e| registered(e, user_id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: its user.registered did not reach outbox-drain within {WITHIN:?}; outbox-drain took {:?}",
            summary(drained)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Event ids on the events queue, in receive order (received and deleted).
async fn events_queue(stack: &TestStack) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let url = stack.stack.queue_url("EventsQueue").expect("EventsQueue");
    let mut ids = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if received.messages().is_empty() {
            return ids;
        }
        for message in received.messages() {
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).expect("JSON envelope");
            if body["correlation_id"] != SETUP_CORRELATION_ID {
                ids.push(body["event_id"].as_str().unwrap_or_default().to_owned());
            }
            let handle = message.receipt_handle().expect("receipt handle");
            sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.expect("delete");
        }
    }
}

/// The user's steps: a@x.io (201), a@x.io again (409), b@x.io (201), each
/// registration's event awaited at outbox-drain. The user ids of a and b.
async fn register_twice_then_another(stack: &TestStack, drained: &Drained) -> (String, String) {
    let (status, a) = register(stack, "a@x.io").await;
    assert_eq!(status, 201, "{a}");
    let a_id = a["user_id"].as_str().expect("user_id").to_owned();
    wait_until_drained(drained, &a_id, "a@x.io").await;

    let (status, again) = register(stack, "a@x.io").await;
    assert_eq!(status, 409, "the same email again: {again}");

    let (status, b) = register(stack, "b@x.io").await;
    assert_eq!(status, 201, "{b}");
    let b_id = b["user_id"].as_str().expect("user_id").to_owned();
    wait_until_drained(drained, &b_id, "b@x.io, registered after a cancelled transaction").await;
    (a_id, b_id)
}

#[tokio::test]
async fn the_stream_keeps_flowing_after_a_cancelled_transaction() {
    let stack = TestStack::new().await;
    open_tenant(&stack, TENANT).await;
    let (trigger, drained) = outbox_drain_trigger(&stack);
    let (a_id, b_id) = tokio::select! {
        () = trigger => unreachable!("the trigger polls until it is dropped"),
        ids = register_twice_then_another(&stack, &drained) => ids,
    };

    // The stream in order, and nothing of the cancelled transaction.
    assert_eq!(
        summary(&drained),
        [("user.registered".to_owned(), a_id), ("user.registered".to_owned(), b_id),]
    );
    let events = drained.lock().unwrap().clone();
    for event in &events {
        let (stored, published_at) = caas::store::outbox::find(
            &stack.clients.dynamodb,
            &stack.table(),
            &event.tenant_id,
            &event.event_id,
        )
        .await
        .expect("read the outbox item")
        .unwrap_or_else(|| panic!("{} reached outbox-drain but is not stored", event.aggregate_id));
        assert_eq!(&stored, event);
        assert!(published_at.is_some(), "{} was not marked published", event.aggregate_id);
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(events_queue(&stack).await, ids, "the events queue holds exactly the two registrations");
}
