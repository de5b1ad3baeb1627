//! The outbox event envelope. Events are written in the same transaction as
//! the change they describe (see [`crate::store::tx`]); the envelope is what
//! reaches the events queue and the audit chain. Payloads never carry secrets
//! or personal data (ids only), and name their actor ([`OutboxEvent::by`]).
//! The catalogue of event types and their payloads is `docs/EVENTS.md`.
//!
//! - [`routes`]: which queues an event goes to, and its message group on each
//! - [`publish`]: the envelope as an SQS FIFO message, batched within the limits
//! - [`routes`]: which queues each event type goes to
//! - [`drain`]: the outbox-drain service (stream records and the sweep)

pub mod drain;
pub mod publish;
pub mod routes;

use crate::auth::principal::Actor;
use crate::clock::rfc3339;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const SCHEMA_VERSION: u32 = 1;

/// A FIFO batch's messages by message group (`MessageGroupId`, else
/// `fallback`, else the message id), the groups and their messages in the
/// batch's order.
pub fn message_groups(
    records: &[aws_lambda_events::event::sqs::SqsMessage],
    fallback: impl Fn(&aws_lambda_events::event::sqs::SqsMessage) -> Option<String>,
) -> Vec<(String, Vec<&aws_lambda_events::event::sqs::SqsMessage>)> {
    let mut groups: Vec<(String, Vec<&aws_lambda_events::event::sqs::SqsMessage>)> = Vec::new();
    for message in records {
        let group = message
            .attributes
            .get("MessageGroupId")
            .cloned()
            .or_else(|| fallback(message))
            .or_else(|| message.message_id.clone())
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, messages)) => messages.push(message),
            None => groups.push((group, vec![message])),
        }
    }
    groups
}

/// The answer of a queue consumer (`ReportBatchItemFailures`): the failed
/// messages by message id, for SQS to deliver again.
pub fn batch_failures<'a>(
    failed: impl IntoIterator<Item = &'a aws_lambda_events::event::sqs::SqsMessage>,
) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, crate::error::AppError> {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    for message in failed {
        let id = message
            .message_id
            .clone()
            .ok_or_else(|| crate::error::AppError::Internal("a failed message has no message id".into()))?;
        response.add_failure(id);
    }
    Ok(response)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// UUIDv7: unique and time-ordered; the consumers' dedup key.
    pub event_id: String,
    pub tenant_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub correlation_id: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
}

impl OutboxEvent {
    pub fn new(
        tenant: &TenantId,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: &str,
        occurred_at: OffsetDateTime,
        correlation_id: &str,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            event_id: crate::ids::new_id(),
            tenant_id: tenant.as_str().to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at: rfc3339(occurred_at),
            correlation_id: correlation_id.to_owned(),
            schema_version: SCHEMA_VERSION,
            payload,
        }
    }

    /// Names who made the change: the payload's `actor` (`{type, id}`, an id
    /// only, never personal data). Every domain event carries one, so the
    /// audit chain (which hashes the payload) records it too.
    pub fn by(mut self, actor: &Actor) -> Self {
        if let serde_json::Value::Object(payload) = &mut self.payload {
            payload.insert("actor".to_owned(), serde_json::json!({ "type": actor.kind, "id": actor.id }));
        }
        self
    }

    /// The actor named by [`by`](Self::by), if any.
    pub fn actor(&self) -> Option<Actor> {
        self.payload.get("actor").and_then(|actor| serde_json::from_value(actor.clone()).ok())
    }

    /// The message body on the events queue: the envelope as JSON.
    pub fn to_message_body(&self) -> Result<String, crate::error::AppError> {
        serde_json::to_string(self).map_err(|e| crate::error::AppError::internal("encode event", e))
    }
}
