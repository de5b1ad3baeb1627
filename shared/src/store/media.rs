//! Media of a conversation: one item per upload in the conversation's
//! partition, `T#<tenant>#CONV#<conversation id>`, sk `X#<media id>`
//! (`kind = media`), after the messages, so the conversation's Query of its
//! participants (`sk < S#`) never reads them:
//! `uploader_id`, `content_type`, `size` (bytes, as declared), `object_key`,
//! `status` (`pending` → `ready` → `deleted`), `created_at`, `completed_at`,
//! `deleted_at`, `expires_at` (TTL: a pending item when its upload URL has
//! long expired, a deleted one a while after; always checked in code).
//!
//! The S3 object's key is [`object_key`]: `t/<tenant>/c/<conversation>/<media id>`.

use super::chat::conversation_pk;
use super::labels::ChatLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, value};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

const MEDIA_KIND: &str = "media";
const MEDIA_PREFIX: &str = "X#";
const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Upload URL handed out; the object is not checked yet.
    Pending,
    /// Checked against its declaration: downloadable and attachable.
    Ready,
    /// Deleted: the object is gone (or going); the item is a tombstone until its TTL.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub tenant_id: String,
    pub conversation_id: String,
    pub media_id: String,
    pub uploader_id: String,
    pub content_type: String,
    pub size: u64,
    pub object_key: String,
    pub status: MediaStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Epoch seconds (TTL); absent on a ready item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The S3 key of a media object: scoped by tenant and conversation.
pub fn object_key(tenant: &str, conversation_id: &str, media_id: &str) -> String {
    format!("t/{tenant}/c/{conversation_id}/{media_id}")
}

pub fn media_key(tenant: &str, conversation_id: &str, media_id: &str) -> Item {
    key(conversation_pk(tenant, conversation_id), &format!("{MEDIA_PREFIX}{media_id}"))
}

pub fn decode_media(item: Item) -> Result<MediaRecord, AppError> {
    from_item(item)
}

/// The insert of a new (pending) media item (label `media`).
pub fn insert_media(table: &str, record: &MediaRecord) -> Result<Action<ChatLabel>, AppError> {
    Keyed::new(
        conversation_pk(&record.tenant_id, &record.conversation_id),
        format!("{MEDIA_PREFIX}{}", record.media_id),
        MEDIA_KIND,
        record,
    )
    .version(SCHEMA_VERSION)
    .insert(table, ChatLabel::Media)
}

/// A pending upload of `uploader` becomes ready (label `media`): only while
/// pending and not expired; its TTL goes.
pub fn mark_ready(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    media_id: &str,
    uploader: &str,
    at: &str,
    now: i64,
) -> Result<Action<ChatLabel>, AppError> {
    Action::update(
        table,
        ChatLabel::Media,
        media_key(tenant, conversation_id, media_id),
        "SET #status = :ready, completed_at = :at REMOVE expires_at",
        Some("#status = :pending AND uploader_id = :uploader AND expires_at > :now"),
        Expr::default()
            .name("#status", "status")
            .value(":ready", value(MediaStatus::Ready)?)
            .value(":pending", value(MediaStatus::Pending)?)
            .value(":uploader", value(uploader)?)
            .value(":at", value(at)?)
            .value(":now", value(now)?),
    )
}

/// A media item becomes a tombstone until `expires_at` (label `media`):
/// only if not deleted yet and, with `uploader`, only that uploader's.
pub fn mark_deleted(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    media_id: &str,
    uploader: Option<&str>,
    at: &str,
    expires_at: i64,
) -> Result<Action<ChatLabel>, AppError> {
    let mut condition = "attribute_exists(pk) AND #status <> :deleted".to_owned();
    let mut expr = Expr::default()
        .name("#status", "status")
        .value(":deleted", value(MediaStatus::Deleted)?)
        .value(":at", value(at)?)
        .value(":expires", value(expires_at)?);
    if let Some(uploader) = uploader {
        condition.push_str(" AND uploader_id = :uploader");
        expr = expr.value(":uploader", value(uploader)?);
    }
    Action::update(
        table,
        ChatLabel::Media,
        media_key(tenant, conversation_id, media_id),
        "SET #status = :deleted, deleted_at = :at, expires_at = :expires",
        Some(&condition),
        expr,
    )
}

/// "The media item is ready and `uploader`'s" (label `media`): an attachment
/// of a post, so a deletion racing the post cancels it.
pub fn require_ready(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    media_id: &str,
    uploader: &str,
) -> Result<Action<ChatLabel>, AppError> {
    Action::condition_check(
        table,
        ChatLabel::Media,
        media_key(tenant, conversation_id, media_id),
        "#status = :ready AND uploader_id = :uploader",
        Expr::default()
            .name("#status", "status")
            .value(":ready", value(MediaStatus::Ready)?)
            .value(":uploader", value(uploader)?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_sort_after_messages_and_objects_are_scoped() {
        assert!(MEDIA_PREFIX > "S#", "the conversation's Query up to S# never reads media");
        assert_eq!(object_key("acme", "c-1", "m-1"), "t/acme/c/c-1/m-1");
    }
}
