//! Where each outbox event goes: one `match` on the event type names its
//! destinations, and each destination its queue and FIFO message group.
//!
//! - [`Destination::Events`]: the events queue, every event, grouped by
//!   tenant (the audit writer appends each tenant's chain in order).
//! - [`Destination::Delivery`]: the delivery queue, the chat events a
//!   conversation's participants see live, grouped by conversation (the
//!   deliver function pushes each conversation's frames in order).
//! - [`Destination::Search`]: the search queue, what changes the search
//!   index (messages, people), grouped by tenant (index-search reads the text
//!   from the table: events carry ids only).
//!
//! The drain marks an event published only once every destination accepted
//! it; a retry sends it to all of them again (each queue drops a duplicate
//! event id for 5 minutes, and every consumer is idempotent).

use super::OutboxEvent;
use crate::config::{Config, ConfigError};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// `EVENTS_QUEUE_URL` (FIFO, group = tenant).
    Events,
    /// `DELIVERY_QUEUE_URL` (FIFO, group = tenant and conversation).
    Delivery,
    /// `SEARCH_QUEUE_URL` (FIFO, group = tenant).
    Search,
}

impl Destination {
    pub const ALL: [Destination; 3] = [Destination::Events, Destination::Delivery, Destination::Search];

    /// The queue URL of this destination, from the configuration.
    pub fn queue_url(self, config: &Config) -> Result<&str, AppError> {
        let (url, name) = match self {
            Destination::Events => (&config.events_queue_url, "EVENTS_QUEUE_URL"),
            Destination::Delivery => (&config.delivery_queue_url, "DELIVERY_QUEUE_URL"),
            Destination::Search => (&config.search_queue_url, "SEARCH_QUEUE_URL"),
        };
        url.as_deref().ok_or(AppError::Config(ConfigError::Missing(name)))
    }

    /// The FIFO message group of `event` on this destination: the unit of order.
    pub fn group_id(self, event: &OutboxEvent) -> String {
        match self {
            Destination::Events | Destination::Search => event.tenant_id.clone(),
            // A chat event's aggregate is its conversation.
            Destination::Delivery => format!("{}:{}", event.tenant_id, event.aggregate_id),
        }
    }
}

/// The destinations of an event of type `event_type`.
pub fn destinations(event_type: &str) -> &'static [Destination] {
    use Destination::*;
    match event_type {
        "message.posted" | "message.edited" | "message.deleted" => &[Events, Delivery, Search],
        "conversation.created"
        | "conversation.participants_added"
        | "conversation.participant_removed"
        | "conversation.participant_left" => &[Events, Delivery],
        // A person's display name: the index reads it from the table.
        "user.registered" | "user.profile_changed" | "user.erased" => &[Events, Search],
        _ => &[Events],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reaches_the_events_queue_and_chat_events_the_delivery_queue() {
        for event_type in ["payment.captured", "user.registered", "conversation.read", "message.posted"] {
            assert!(destinations(event_type).contains(&Destination::Events), "{event_type}");
        }
        assert_eq!(
            destinations("message.edited"),
            [Destination::Events, Destination::Delivery, Destination::Search]
        );
        for event_type in ["user.registered", "user.profile_changed", "user.erased"] {
            assert_eq!(destinations(event_type), [Destination::Events, Destination::Search], "{event_type}");
        }
        assert!(!destinations("conversation.created").contains(&Destination::Search));
        assert_eq!(destinations("conversation.read"), [Destination::Events], "read state is the reader's");
        assert_eq!(destinations("payment.captured"), [Destination::Events]);
        let tenant = crate::tenant::TenantId::parse("acme").unwrap();
        let event = OutboxEvent::new(
            &tenant,
            "conversation",
            "c-1",
            "message.posted",
            time::OffsetDateTime::UNIX_EPOCH,
            "corr",
            serde_json::json!({}),
        );
        assert_eq!(Destination::Events.group_id(&event), "acme");
        assert_eq!(Destination::Delivery.group_id(&event), "acme:c-1");
        assert_eq!(Destination::Search.group_id(&event), "acme");
    }
}
