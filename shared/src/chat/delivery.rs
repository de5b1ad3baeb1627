//! Real-time delivery: the deliver function pushes the chat events of the
//! delivery queue (FIFO, one message group per conversation, fed by
//! outbox-drain: [`crate::outbox::routes`]) to every live WebSocket
//! connection of the conversation's participants, with the API Gateway
//! Management API's `PostToConnection`.
//!
//! **Cost of one SQS batch** (up to 10 events): per conversation in it, one
//! consistent Query of its partition up to the messages (the conversation and
//! its current participants); one BatchGetItem of every message the batch's
//! message events name (events carry ids and sequence numbers, never text:
//! the frame's message is read from its item); per recipient, one Query of
//! their `gsi1` connection listing (expired ones filtered out); then one
//! `PostToConnection` per frame and connection. One message to a
//! conversation of P participants with C live connections: 2 + P DynamoDB
//! calls and C pushes (docs/BENCHMARKS.md).
//!
//! **Order and retries.** A conversation's frames go out one after the
//! other, each to all its connections at once, so every connection sees them
//! in the conversation's order. A connection API Gateway no longer knows
//! (`410 Gone`) is deleted and skipped. Any other failed push fails its
//! event after the other connections got it, and (FIFO) the rest of its
//! conversation's events in the batch: SQS delivers them again and they are
//! pushed again to every connection. Delivery is at least once; frames carry
//! the event id and the conversation's sequence numbers so a client drops
//! duplicates and sees gaps (then fetches them by HTTP). The frames are in
//! docs/WEBSOCKET.md.
//!
//! Who receives a frame: the participants when it is delivered (a user
//! removed before delivery receives nothing new), plus, for a removal or a
//! departure, the user who left (so their clients learn it).

use super::MessageView;
use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use crate::store::chat::{self as store, ConversationRecord, MessageRecord, ParticipantRecord};
use crate::store::connections;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_apigatewaymanagement as management;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

/// Pushes of one frame in flight at once.
const CONCURRENT_PUSHES: usize = 32;

/// The Management API's configuration for `CONNECTIONS_ENDPOINT` (the
/// WebSocket API stage's URL) on top of the SDK's.
pub fn connections_config(
    config: &Config,
    sdk: &aws_config::SdkConfig,
) -> Result<management::config::Builder, ConfigError> {
    let endpoint =
        config.connections_endpoint.as_deref().ok_or(ConfigError::Missing("CONNECTIONS_ENDPOINT"))?;
    Ok(management::config::Builder::from(sdk).endpoint_url(endpoint))
}

/// The Management API client of the deliver function, built once per container.
pub async fn connections_client(config: &Config) -> Result<management::Client, ConfigError> {
    let sdk = crate::clients::load_sdk_config().await;
    Ok(management::Client::from_conf(connections_config(config, &sdk)?.build()))
}

/// What a delivered event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `message.posted`, `.edited`, `.deleted`: the message at `seq`.
    Message(u64),
    /// `conversation.*`: the change, with the user who left (if one did).
    Conversation { departed: Option<String> },
}

/// One event of the batch, decoded.
struct Delivery<'a> {
    message: &'a SqsMessage,
    event: OutboxEvent,
    kind: Kind,
}

fn decode(message: &SqsMessage) -> Result<(OutboxEvent, Kind), AppError> {
    let bad = |what: &str| AppError::Internal(format!("delivery message: {what}"));
    let event: OutboxEvent = serde_json::from_str(message.body.as_deref().unwrap_or_default())
        .map_err(|_| bad("not an event envelope"))?;
    crate::tenant::TenantId::parse(&event.tenant_id).map_err(|_| bad("tenant"))?;
    if event.aggregate_type != "conversation" || !crate::ids::is_valid_id(&event.aggregate_id) {
        return Err(bad("not a conversation's event"));
    }
    let kind = match event.event_type.as_str() {
        "message.posted" | "message.edited" | "message.deleted" => {
            let seq = event.payload.get("seq").and_then(Value::as_u64).ok_or_else(|| bad("seq"))?;
            Kind::Message(seq)
        }
        "conversation.participant_removed" | "conversation.participant_left" => {
            let user = event.payload.get("user_id").and_then(Value::as_str).ok_or_else(|| bad("user_id"))?;
            Kind::Conversation { departed: Some(user.to_owned()) }
        }
        _ => Kind::Conversation { departed: None },
    };
    Ok((event, kind))
}

/// The frame of one event (docs/WEBSOCKET.md); `None` for a message event
/// whose message is not there.
fn frame(
    delivery: &Delivery<'_>,
    conversation: &ConversationRecord,
    message: Option<&MessageRecord>,
) -> Option<Value> {
    let event = &delivery.event;
    let mut frame = json!({
        "type": event.event_type,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "conversation_id": event.aggregate_id,
        "last_seq": conversation.seq,
        "actor": event.payload.get("actor"),
    });
    match &delivery.kind {
        Kind::Message(seq) => {
            frame["seq"] = json!(seq);
            frame["message"] = serde_json::to_value(MessageView::from(message?.clone())).ok()?;
        }
        Kind::Conversation { .. } => {
            // Ids only, as in the event.
            for field in ["type", "participants", "admins", "user_ids", "user_id", "role"] {
                if let Some(value) = event.payload.get(field) {
                    let name = if field == "type" { "conversation_type" } else { field };
                    frame[name] = value.clone();
                }
            }
        }
    }
    Some(frame)
}

/// The outcome of one push.
enum Pushed {
    Delivered,
    Gone,
    Failed,
}

async fn push(client: &management::Client, connection_id: &str, frame: &[u8]) -> Pushed {
    let result =
        client.post_to_connection().connection_id(connection_id).data(Blob::new(frame.to_vec())).send().await;
    match result {
        Ok(_) => Pushed::Delivered,
        Err(error) if matches!(error.as_service_error(), Some(PostToConnectionError::GoneException(_))) => {
            Pushed::Gone
        }
        Err(error) => {
            let error = AppError::from_sdk("post to connection", error);
            tracing::warn!(%error, %connection_id, "push failed");
            Pushed::Failed
        }
    }
}

/// Everything the batch's pushes need, read once.
struct Reads {
    /// By `(tenant, conversation id)`.
    conversations: HashMap<(String, String), (ConversationRecord, Vec<ParticipantRecord>)>,
    /// By `(tenant, conversation id, seq)`.
    messages: HashMap<(String, String, u64), MessageRecord>,
    /// Live connection ids per `(tenant, user)`.
    connections: HashMap<(String, String), Vec<String>>,
}

/// Pushes a batch of the delivery queue (see the module's documentation);
/// the failed messages come back as batch item failures.
#[tracing::instrument(skip_all, fields(records = event.records.len()))]
pub async fn deliver(
    app: &App,
    client: &management::Client,
    event: &SqsEvent,
) -> Result<SqsBatchResponse, AppError> {
    // Per message group (a conversation), in the queue's order.
    let groups = crate::outbox::message_groups(&event.records, |_| None);
    let mut failed: Vec<&SqsMessage> = Vec::new();
    let mut batches: Vec<Vec<Delivery<'_>>> = Vec::new();
    for (group, messages) in &groups {
        let mut deliveries = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            match decode(message) {
                Ok((event, kind)) => deliveries.push(Delivery { message, event, kind }),
                Err(error) => {
                    // Left for the queue's redrive (its DLQ keeps it); the rest of
                    // the group waits behind it, as FIFO requires.
                    tracing::error!(%error, message_id = message.message_id.as_deref(), group, "undeliverable message");
                    failed.extend(&messages[i..]);
                    break;
                }
            }
        }
        batches.push(deliveries);
    }
    let all: Vec<&Delivery<'_>> = batches.iter().flatten().collect();
    match read(app, &all).await {
        Ok(reads) => {
            let gone = Mutex::new(HashSet::new());
            let results = futures::future::join_all(
                batches.iter().map(|deliveries| push_group(app, client, &reads, &gone, deliveries)),
            )
            .await;
            failed.extend(results.into_iter().flatten());
        }
        Err(error) => {
            tracing::error!(%error, "delivery reads failed; the batch is retried");
            failed.extend(all.iter().map(|d| d.message));
        }
    }
    crate::outbox::batch_failures(failed)
}

/// The conversations with their participants, the messages, and the
/// recipients' live connections (see the module's documentation for the cost).
async fn read(app: &App, all: &[&Delivery<'_>]) -> Result<Reads, AppError> {
    let (dynamodb, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let keys: BTreeSet<(&str, &str)> =
        all.iter().map(|d| (d.event.tenant_id.as_str(), d.event.aggregate_id.as_str())).collect();
    let conversations = futures::future::try_join_all(keys.iter().map(|(tenant, id)| async move {
        let found = store::conversation_with_participants(dynamodb, table, tenant, id).await?;
        Ok::<_, AppError>(found.map(|found| (((*tenant).to_owned(), (*id).to_owned()), found)))
    }))
    .await?;
    let conversations: HashMap<(String, String), _> = conversations.into_iter().flatten().collect();

    let mut messages = HashMap::new();
    // Each message once (an edit may follow its post in one batch).
    let mut wanted: HashMap<&str, BTreeSet<(String, u64)>> = HashMap::new();
    for d in all {
        if let Kind::Message(seq) = d.kind {
            wanted.entry(d.event.tenant_id.as_str()).or_default().insert((d.event.aggregate_id.clone(), seq));
        }
    }
    for (tenant, wanted) in wanted {
        let wanted: Vec<(String, u64)> = wanted.into_iter().collect();
        let found = store::messages_at(dynamodb, table, tenant, &wanted).await?;
        for ((conversation, seq), message) in wanted.into_iter().zip(found) {
            if let Some(message) = message {
                messages.insert((tenant.to_owned(), conversation, seq), message);
            }
        }
    }

    let mut recipients: BTreeSet<(String, String)> = BTreeSet::new();
    for d in all {
        let tenant = &d.event.tenant_id;
        if let Some((_, participants)) = conversations.get(&(tenant.clone(), d.event.aggregate_id.clone())) {
            recipients.extend(participants.iter().map(|p| (tenant.clone(), p.user_id.clone())));
        }
        if let Kind::Conversation { departed: Some(user) } = &d.kind {
            recipients.insert((tenant.clone(), user.clone()));
        }
    }
    let mut by_tenant: HashMap<String, Vec<String>> = HashMap::new();
    for (tenant, user) in recipients {
        by_tenant.entry(tenant).or_default().push(user);
    }
    let mut connections = HashMap::new();
    for (tenant, users) in by_tenant {
        for (user, ids) in super::presence::live_connections(app, &tenant, users).await? {
            connections.insert((tenant.clone(), user), ids);
        }
    }
    Ok(Reads { conversations, messages, connections })
}

/// Pushes one conversation's events in order; the messages that failed
/// (the first failed one and every later one).
async fn push_group<'a>(
    app: &App,
    client: &management::Client,
    reads: &Reads,
    gone: &Mutex<HashSet<String>>,
    deliveries: &[Delivery<'a>],
) -> Vec<&'a SqsMessage> {
    for (i, delivery) in deliveries.iter().enumerate() {
        let event = &delivery.event;
        let key = (event.tenant_id.clone(), event.aggregate_id.clone());
        let Some((conversation, participants)) = reads.conversations.get(&key) else {
            tracing::warn!(conversation_id = %event.aggregate_id, "no such conversation; nothing delivered");
            continue;
        };
        let message = match delivery.kind {
            Kind::Message(seq) => reads.messages.get(&(key.0.clone(), key.1.clone(), seq)),
            Kind::Conversation { .. } => None,
        };
        let Some(frame) = frame(delivery, conversation, message) else {
            tracing::warn!(conversation_id = %event.aggregate_id, "the message is not there; nothing delivered");
            continue;
        };
        let frame = frame.to_string().into_bytes();
        let mut users: BTreeSet<&str> = participants.iter().map(|p| p.user_id.as_str()).collect();
        if let Kind::Conversation { departed: Some(user) } = &delivery.kind {
            users.insert(user);
        }
        let targets: Vec<&str> = users
            .into_iter()
            .filter_map(|user| reads.connections.get(&(event.tenant_id.clone(), user.to_owned())))
            .flatten()
            .map(String::as_str)
            .filter(|id| !gone.lock().unwrap_or_else(|p| p.into_inner()).contains(*id))
            .collect();
        let outcomes: Vec<(&str, Pushed)> = {
            use futures::StreamExt;
            futures::stream::iter(targets)
                .map(|id| {
                    let frame = &frame;
                    async move { (id, push(client, id, frame).await) }
                })
                .buffer_unordered(CONCURRENT_PUSHES)
                .collect()
                .await
        };
        let (mut delivered, mut removed, mut failures) = (0usize, 0usize, 0usize);
        for (id, outcome) in outcomes {
            match outcome {
                Pushed::Delivered => delivered += 1,
                Pushed::Gone => {
                    removed += 1;
                    gone.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned());
                    if let Err(error) =
                        connections::delete(&app.clients.dynamodb, &app.config.table_name, id).await
                    {
                        tracing::warn!(%error, connection_id = %id, "could not forget a gone connection");
                    }
                }
                Pushed::Failed => failures += 1,
            }
        }
        tracing::info!(
            conversation_id = %event.aggregate_id,
            event_type = %event.event_type,
            event_id = %event.event_id,
            delivered,
            gone = removed,
            failed = failures,
            "event delivered"
        );
        if failures > 0 {
            return deliveries[i..].iter().map(|d| d.message).collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqs(body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.body = Some(body.to_owned());
        message
    }

    #[test]
    fn only_conversation_events_with_their_numbers_decode() {
        let tenant = crate::tenant::TenantId::parse("acme").unwrap();
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let id = crate::ids::new_id();
        let posted =
            OutboxEvent::new(&tenant, "conversation", &id, "message.posted", at, "c", json!({"seq": 3}));
        let (_, kind) = decode(&sqs(&posted.to_message_body().unwrap())).unwrap();
        assert_eq!(kind, Kind::Message(3));
        let left = OutboxEvent::new(
            &tenant,
            "conversation",
            &id,
            "conversation.participant_left",
            at,
            "c",
            json!({"user_id": "u-1"}),
        );
        let (_, kind) = decode(&sqs(&left.to_message_body().unwrap())).unwrap();
        assert_eq!(kind, Kind::Conversation { departed: Some("u-1".into()) });
        let no_seq = OutboxEvent::new(&tenant, "conversation", &id, "message.edited", at, "c", json!({}));
        assert!(decode(&sqs(&no_seq.to_message_body().unwrap())).is_err());
        let payment = OutboxEvent::new(&tenant, "payment", &id, "payment.captured", at, "c", json!({}));
        assert!(decode(&sqs(&payment.to_message_body().unwrap())).is_err());
        assert!(decode(&sqs("not json")).is_err());
    }
}
