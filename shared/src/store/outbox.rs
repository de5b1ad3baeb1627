//! Outbox items after [`super::tx`] wrote them: decoding a stored or streamed
//! item, marking it published, and reading the sparse index of pending items
//! (`gsi2`, partition `OUTBOX#PENDING#<shard>`, sort key the event id) that the
//! sweep uses.
//!
//! Layout (written by the transaction builder): pk `T#<tenant>#OUTBOX#<event_id>`,
//! sk `OUTBOX`, `kind = "outbox"`, the envelope's fields flattened, `gsi2pk`/`gsi2sk`
//! while unpublished. Publishing sets `published_at` and removes the index keys.

use super::tx::{OUTBOX_PENDING_SHARDS, outbox_pk};
use super::{Item, key};
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use time::OffsetDateTime;

/// The `kind` of outbox items (template.yaml's stream filter matches on it).
pub const KIND: &str = "outbox";
const SORT_KEY: &str = "OUTBOX";
const PENDING_INDEX: &str = "gsi2";

#[derive(Deserialize)]
struct KindOnly {
    #[serde(default)]
    kind: Option<String>,
}

/// The event of an outbox item given as a stream image. `Ok(None)` when the
/// image is some other kind of item; an error when it claims to be an outbox
/// item but does not decode (a poison record).
pub fn event_from_image(image: serde_dynamo::Item) -> Result<Option<OutboxEvent>, AppError> {
    let kind: KindOnly =
        serde_dynamo::from_item(image.clone()).map_err(|e| AppError::internal("decode stream image", e))?;
    if kind.kind.as_deref() != Some(KIND) {
        return Ok(None);
    }
    serde_dynamo::from_item(image).map(Some).map_err(|e| AppError::internal("decode outbox image", e))
}

/// Extra attributes of the item (keys, kind, index keys) are ignored.
fn event_from_item(item: Item) -> Result<OutboxEvent, AppError> {
    serde_dynamo::from_item(item).map_err(|e| AppError::internal("decode outbox item", e))
}

/// The stored outbox item of an event, if any (strongly consistent).
pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_id: &str,
) -> Result<Option<(OutboxEvent, Option<String>)>, AppError> {
    #[derive(Deserialize)]
    struct Published {
        #[serde(default)]
        published_at: Option<String>,
    }
    let Some(item) = super::get(dynamodb, table, key(outbox_pk(tenant, event_id), SORT_KEY)).await? else {
        return Ok(None);
    };
    let published: Published = super::from_item(item.clone())?;
    Ok(Some((event_from_item(item)?, published.published_at)))
}

/// What marking an item published found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    Now,
    /// Marked by an earlier drain (or the item is gone): nothing to do.
    Already,
}

/// Marks an outbox item published: sets `published_at` and drops it from the
/// pending index, on the condition that it exists and was not marked before
/// (the first publication time is kept).
pub async fn mark_published(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_id: &str,
    at: &str,
) -> Result<Marked, AppError> {
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key(outbox_pk(tenant, event_id), SORT_KEY)))
        .update_expression("SET published_at = :at REMOVE gsi2pk, gsi2sk")
        .condition_expression("attribute_exists(pk) AND attribute_not_exists(published_at)")
        .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Marked::Now),
        Err(error) => match error.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Marked::Already),
            _ => Err(AppError::from_sdk("mark outbox item published", error)),
        },
    }
}

/// The pending-index shards.
pub fn pending_shards() -> impl Iterator<Item = u32> {
    0..OUTBOX_PENDING_SHARDS
}

/// One page of a shard of the pending index: events whose id (UUIDv7, so
/// their creation time) is older than `before`, oldest first. An explicit
/// cursor, not a paginator: the sweep stops at a page boundary once it has
/// as many events as it may publish in one invocation.
pub async fn pending_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    shard: u32,
    before: OffsetDateTime,
    limit: i32,
    start: Option<Item>,
) -> Result<(Vec<Result<OutboxEvent, AppError>>, Option<Item>), AppError> {
    let output = dynamodb
        .query()
        .table_name(table)
        .index_name(PENDING_INDEX)
        .key_condition_expression("gsi2pk = :pk AND gsi2sk < :before")
        .expression_attribute_values(":pk", AttributeValue::S(format!("OUTBOX#PENDING#{shard}")))
        .expression_attribute_values(":before", AttributeValue::S(v7_floor(before)))
        .limit(limit)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("query pending outbox", e))?;
    let events = output.items.unwrap_or_default().into_iter().map(event_from_item).collect();
    Ok((events, output.last_evaluated_key))
}

/// The smallest UUIDv7 (hyphenated, lowercase) of the millisecond `at`: every
/// id created earlier sorts below it.
fn v7_floor(at: OffsetDateTime) -> String {
    let ms = u64::try_from(crate::clock::epoch_ms(at)).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{:08x}-{:04x}-7000-8000-000000000000", ms >> 16, ms & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_floor_orders_with_real_ids() {
        let now = OffsetDateTime::now_utc();
        let id = crate::ids::new_id();
        assert!(v7_floor(now - time::Duration::seconds(1)) < id);
        assert!(v7_floor(now + time::Duration::seconds(1)) > id);
        assert_eq!(v7_floor(now).len(), 36);
    }
}
