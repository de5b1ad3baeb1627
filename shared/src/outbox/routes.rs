//! Where each outbox event goes: one `match` on its type names the queues
//! that receive it. Every event goes to the events queue (the audit chain and
//! any subscriber); the events the search index follows go to the search
//! queue too. A queue's message group is the tenant: each queue keeps a
//! tenant's events in their order.

use super::OutboxEvent;
use crate::config::{Config, ConfigError};
use crate::error::AppError;

/// A queue outbox-drain publishes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// `EVENTS_QUEUE_URL`: every event (audit-writer).
    Events,
    /// `SEARCH_QUEUE_URL`: what changes the search index (index-search).
    Search,
}

impl Queue {
    /// The queue's URL from the drain's configuration.
    pub fn url(self, config: &Config) -> Result<&str, AppError> {
        let (url, name) = match self {
            Queue::Events => (config.events_queue_url.as_deref(), "EVENTS_QUEUE_URL"),
            Queue::Search => (config.search_queue_url.as_deref(), "SEARCH_QUEUE_URL"),
        };
        url.ok_or(AppError::Config(ConfigError::Missing(name)))
    }
}

/// The queues `event` goes to, the events queue first.
pub fn queues(event: &OutboxEvent) -> &'static [Queue] {
    match event.event_type.as_str() {
        // A message's text, a person's display name: the index reads them
        // from the table (events carry ids only).
        "message.posted"
        | "message.edited"
        | "message.deleted"
        | "user.registered"
        | "user.profile_changed"
        | "user.erased" => &[Queue::Events, Queue::Search],
        _ => &[Queue::Events],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str) -> OutboxEvent {
        let tenant = crate::tenant::TenantId::parse("acme").unwrap();
        OutboxEvent::new(
            &tenant,
            "x",
            "1",
            event_type,
            time::OffsetDateTime::UNIX_EPOCH,
            "c",
            serde_json::json!({}),
        )
    }

    #[test]
    fn every_event_reaches_the_events_queue_and_the_index_follows_its_own() {
        for t in ["payment.captured", "user.login_succeeded", "conversation.created", "message.posted"] {
            assert_eq!(queues(&event(t)).first(), Some(&Queue::Events), "{t}");
        }
        for t in ["message.posted", "message.edited", "message.deleted", "user.registered", "user.erased"] {
            assert!(queues(&event(t)).contains(&Queue::Search), "{t}");
        }
        assert!(!queues(&event("conversation.read")).contains(&Queue::Search));
    }
}
