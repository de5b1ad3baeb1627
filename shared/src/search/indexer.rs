//! The indexer (`index-search`): the search queue's events (outbox-drain
//! routes them, [`crate::outbox::routes`]) applied to the index. Events carry
//! ids only, so each one is answered by reading what it names from the table
//! and indexing that as it is now: a message (posted, edited, deleted), a
//! person's display name (registered, changed, erased). Re-indexing what is
//! current is idempotent and independent of order, so a redelivered or
//! late event changes nothing wrong.
//!
//! The queue is FIFO per tenant: a message that fails fails the rest of its
//! tenant's messages in the batch with it (they are retried in order).

use super::engine::{Engine, TableIndex};
use crate::app::App;
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use crate::privacy::personal;
use crate::store::{chat, members, user_keys};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::collections::HashSet;

/// Applies a batch of the search queue; the failed messages (and their
/// tenants' later ones) come back as batch item failures.
pub async fn index_messages(app: &App, event: &SqsEvent) -> Result<SqsBatchResponse, AppError> {
    let engine = TableIndex::new(app);
    let mut failed_groups: HashSet<String> = HashSet::new();
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        let id = message
            .message_id
            .clone()
            .ok_or_else(|| AppError::Internal("a queue message has no message id".into()))?;
        let group = message.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        if failed_groups.contains(&group) {
            response.add_failure(id);
            continue;
        }
        let applied = match message.body.as_deref().map(serde_json::from_str::<OutboxEvent>) {
            Some(Ok(event)) => apply(app, &engine, &event).await,
            _ => Err(AppError::Internal("a search queue message is not an event envelope".into())),
        };
        if let Err(error) = applied {
            tracing::error!(%error, message_id = %id, "search index not updated; retried");
            failed_groups.insert(group);
            response.add_failure(id);
        }
    }
    Ok(response)
}

fn id_field<'a>(event: &'a OutboxEvent, field: &str) -> Result<&'a str, AppError> {
    event
        .payload
        .get(field)
        .and_then(|v| v.as_str())
        .filter(|id| crate::ids::is_valid_id(id))
        .ok_or_else(|| AppError::Internal(format!("{} without a valid {field}", event.event_type)))
}

/// One event applied: what it names re-indexed as it is now.
pub async fn apply(app: &App, engine: &impl Engine, event: &OutboxEvent) -> Result<(), AppError> {
    let tenant = event.tenant_id.as_str();
    match event.event_type.as_str() {
        "message.posted" | "message.edited" | "message.deleted" => {
            let conversation_id = id_field(event, "conversation_id")?;
            let seq = event
                .payload
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| AppError::Internal(format!("{} without a seq", event.event_type)))?;
            let key = chat::message_key(tenant, conversation_id, seq);
            let message = crate::store::get(&app.clients.dynamodb, &app.config.table_name, key)
                .await?
                .map(chat::decode_message)
                .transpose()?;
            let content = message
                .as_ref()
                .filter(|m| m.deleted_at.is_none())
                .and_then(|m| m.body.as_deref().map(|body| (m.message_id.as_str(), body)));
            engine.index_message(tenant, conversation_id, seq, content).await
        }
        "user.registered" | "user.profile_changed" | "user.erased" => {
            let user_id = id_field(event, "user_id")?;
            let name = if event.event_type == "user.erased" {
                None
            } else {
                display_name(app, tenant, user_id).await?
            };
            engine.index_person(tenant, user_id, name.as_deref()).await
        }
        _ => Ok(()),
    }
}

/// A person's display name as it is now: their directory entry and key in
/// one consistent BatchGetItem, then one KMS `Decrypt`. `None` for someone
/// without a name, or erased.
async fn display_name(app: &App, tenant: &str, user_id: &str) -> Result<Option<String>, AppError> {
    let keys = vec![members::member_key(tenant, user_id), user_keys::key_of(tenant, user_id)];
    let mut found =
        crate::store::get_many(&app.clients.dynamodb, &app.config.table_name, keys).await?.into_iter();
    let member = found.next().flatten().map(crate::store::from_item::<members::MemberRecord>).transpose()?;
    let key = found.next().flatten().map(crate::store::from_item::<user_keys::UserKeyRecord>).transpose()?;
    let (Some(member), Some(key)) = (member, key) else { return Ok(None) };
    // Disabled people stay indexed: the search shows active people only, from their entry.
    let Some(sealed) = member.display_name_sealed.as_deref() else { return Ok(None) };
    let key = personal::unwrap(app, &key).await?;
    key.open(personal::DISPLAY_NAME, sealed).map(Some)
}
