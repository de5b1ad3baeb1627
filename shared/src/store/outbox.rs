//! Outbox items: their layout (the transaction builder [`super::tx`] inserts
//! them), decoding a stored or streamed item, marking items published, and
//! reading the sparse index of pending items (`gsi2`, partition
//! `OUTBOX#PENDING#<shard>`, sort key the event id) that the sweep uses.
//!
//! Layout: pk `T#<tenant>#OUTBOX#<event_id>`, sk `OUTBOX`, `kind = "outbox"`, the
//! envelope's fields flattened but for the tenant and event id the key holds
//! (its `schema_version` is the layout's too), `gsi2pk`/`gsi2sk` while unpublished. Publishing puts the item back without
//! the index keys and with `published_at`, 25 items to a BatchWriteItem.

use super::{Item, key, tenant_pk};
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// The `kind` of outbox items (template.yaml's stream filter matches on it).
pub const KIND: &str = "outbox";
const SORT_KEY: &str = "OUTBOX";
const PENDING_INDEX: &str = "gsi2";
/// Shards of the pending index, so one hot tenant does not make one hot
/// index partition.
const PENDING_SHARDS: u32 = 4;
/// DynamoDB's limit on the writes of one BatchWriteItem.
pub const MAX_BATCH_WRITES: usize = 25;
/// Sends of one batch while DynamoDB leaves some of its writes unprocessed.
const BATCH_ATTEMPTS: u32 = 5;
/// BatchWriteItem calls in flight at once.
const BATCH_CONCURRENCY: usize = 4;

/// An outbox item as stored: keys, kind, the envelope, and either the pending
/// index keys or the publication time.
#[derive(Serialize)]
struct Stored<'a> {
    pk: String,
    sk: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_at: Option<&'a str>,
    #[serde(flatten)]
    event: &'a OutboxEvent,
}

pub(crate) fn outbox_pk(tenant: &str, event_id: &str) -> String {
    tenant_pk(tenant, &format!("OUTBOX#{event_id}"))
}

fn shard(event_id: &str) -> u32 {
    event_id.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b.into())) % PENDING_SHARDS
}

/// The item of a new event, in the pending index (what the transaction inserts).
pub(crate) fn pending_item(event: &OutboxEvent) -> Result<Item, AppError> {
    stored(Stored {
        pk: outbox_pk(&event.tenant_id, &event.event_id),
        sk: SORT_KEY,
        kind: KIND,
        gsi2pk: Some(format!("OUTBOX#PENDING#{}", shard(&event.event_id))),
        gsi2sk: Some(&event.event_id),
        published_at: None,
        event,
    })
}

/// The item of a published event: out of the pending index, with its time.
fn published_item(event: &OutboxEvent, at: &str) -> Result<Item, AppError> {
    stored(Stored {
        pk: outbox_pk(&event.tenant_id, &event.event_id),
        sk: SORT_KEY,
        kind: KIND,
        gsi2pk: None,
        gsi2sk: None,
        published_at: Some(at),
        event,
    })
}

/// The envelope's tenant and event id are the key's (`T#<tenant>#OUTBOX#<id>`):
/// stored once, there, and put back into the envelope when it is read.
const KEYED_FIELDS: [&str; 2] = ["tenant_id", "event_id"];

fn stored(item: Stored<'_>) -> Result<Item, AppError> {
    let mut item = super::to_item(&item)?;
    for field in KEYED_FIELDS {
        item.remove(field);
    }
    Ok(item)
}

/// The tenant and event id a key `T#<tenant>#OUTBOX#<event_id>` names.
fn ids_of(pk: &str) -> Option<(&str, &str)> {
    let (tenant, event_id) = pk.strip_prefix("T#")?.split_once("#OUTBOX#")?;
    Some((tenant, event_id))
}

/// The image with the envelope fields its key holds (items written before
/// the key held them only keep their own copies).
fn with_keyed_fields(mut image: serde_dynamo::Item) -> serde_dynamo::Item {
    let ids = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) => ids_of(pk).map(|(t, e)| [t.to_owned(), e.to_owned()]),
        _ => None,
    };
    for (field, value) in KEYED_FIELDS.into_iter().zip(ids.into_iter().flatten()) {
        image.entry(field.to_owned()).or_insert(serde_dynamo::AttributeValue::S(value));
    }
    image
}

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
    serde_dynamo::from_item(with_keyed_fields(image))
        .map(Some)
        .map_err(|e| AppError::internal("decode outbox image", e))
}

/// Extra attributes of the item (keys, kind, index keys) are ignored.
fn event_from_item(item: Item) -> Result<OutboxEvent, AppError> {
    serde_dynamo::from_item(with_keyed_fields(item.into()))
        .map_err(|e| AppError::internal("decode outbox item", e))
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

/// Marks events published (the queue accepted them): each item is put back
/// without the pending index keys and with `published_at = at`, 25 to a
/// BatchWriteItem, the batches concurrently. Writes DynamoDB leaves
/// unprocessed are sent again (bounded, jittered backoff). Returns the ids of
/// the events not marked: their items stay pending, so the sweep (or the
/// stream's retry) publishes them again; nothing is lost.
///
/// A batch put has no condition: a replayed stream record re-marks its item,
/// so `published_at` is the time of the latest publication. The put writes
/// the envelope the item was inserted with (outbox items never change
/// otherwise).
pub async fn mark_published(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    events: &[&OutboxEvent],
    at: &str,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut writes = Vec::with_capacity(events.len());
    for event in events {
        match published_write(event, at) {
            Ok(write) => writes.push(write),
            Err(error) => {
                tracing::error!(%error, event_id = %event.event_id, "could not encode the published item");
                failed.push(event.event_id.clone());
            }
        }
    }
    let chunks: Vec<Vec<Write>> = writes.chunks(MAX_BATCH_WRITES).map(<[Write]>::to_vec).collect();
    let results = futures::stream::iter(chunks.into_iter().map(|chunk| write_batch(dynamodb, table, chunk)))
        .buffer_unordered(BATCH_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    failed.extend(results.into_iter().flatten());
    failed
}

/// One write of a batch: the event id it marks and the request.
#[derive(Clone)]
struct Write {
    event_id: String,
    pk: String,
    request: WriteRequest,
}

fn published_write(event: &OutboxEvent, at: &str) -> Result<Write, AppError> {
    let put = PutRequest::builder()
        .set_item(Some(published_item(event, at)?))
        .build()
        .map_err(|e| AppError::internal("build put request", e))?;
    Ok(Write {
        event_id: event.event_id.clone(),
        pk: outbox_pk(&event.tenant_id, &event.event_id),
        request: WriteRequest::builder().put_request(put).build(),
    })
}

/// One BatchWriteItem of at most 25 writes, its unprocessed writes sent
/// again; the event ids whose write never went through.
async fn write_batch(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<Write>,
) -> Vec<String> {
    for attempt in 1..=BATCH_ATTEMPTS {
        let requests = pending.iter().map(|w| w.request.clone()).collect();
        let output = match dynamodb.batch_write_item().request_items(table, requests).send().await {
            Ok(output) => output,
            Err(error) => {
                let error = AppError::from_sdk("mark outbox items published", error);
                tracing::warn!(%error, items = pending.len(), "published events not marked");
                break;
            }
        };
        let unprocessed = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        let left: Vec<&AttributeValue> = unprocessed
            .iter()
            .filter_map(|w| w.put_request.as_ref().and_then(|p| p.item.get("pk")))
            .collect();
        let matched: Vec<Write> = pending
            .iter()
            .filter(|w| left.iter().any(|pk| pk.as_s().is_ok_and(|pk| *pk == w.pk)))
            .cloned()
            .collect();
        // An unprocessed write we cannot tell apart: send them all again
        // (the puts are idempotent).
        if matched.len() == unprocessed.len() {
            pending = matched;
        }
        if pending.is_empty() {
            return Vec::new();
        }
        if attempt < BATCH_ATTEMPTS {
            let base = 25u64 << attempt;
            tokio::time::sleep(Duration::from_millis(base + rand::rng().random_range(0..=base))).await;
        } else {
            tracing::warn!(items = pending.len(), "published events left unprocessed, not marked");
        }
    }
    pending.into_iter().map(|w| w.event_id).collect()
}

/// The pending-index shards.
pub fn pending_shards() -> impl Iterator<Item = u32> {
    0..PENDING_SHARDS
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

    #[test]
    fn the_key_holds_tenant_and_event_id_and_both_layouts_decode() {
        let tenant = crate::tenant::TenantId::parse("acme-corp").unwrap();
        let event = OutboxEvent::new(
            &tenant,
            "user",
            "u1",
            "user.registered",
            OffsetDateTime::now_utc(),
            "c1",
            serde_json::json!({"user_id": "u1", "n": 3}),
        );
        let pending = pending_item(&event).unwrap();
        assert!(!pending.contains_key("tenant_id") && !pending.contains_key("event_id"));
        assert_eq!(pending["gsi2sk"], AttributeValue::S(event.event_id.clone()));
        assert_eq!(event_from_item(pending.clone()).unwrap(), event);
        let image: serde_dynamo::Item = pending.into();
        assert_eq!(event_from_image(image).unwrap(), Some(event.clone()));
        let published = published_item(&event, "2026-01-01T00:00:00Z").unwrap();
        assert!(!published.contains_key("gsi2pk"));
        assert_eq!(event_from_item(published).unwrap(), event);
        // Items written with their own copies decode as they are.
        let mut old = super::super::to_item(&event).unwrap();
        old.insert("pk".into(), AttributeValue::S(outbox_pk("acme-corp", &event.event_id)));
        old.insert("kind".into(), AttributeValue::S(KIND.into()));
        assert_eq!(event_from_item(old).unwrap(), event);
    }
}
