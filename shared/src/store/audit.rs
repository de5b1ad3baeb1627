//! Audit chain items. Per tenant:
//!
//! - entries: pk `T#<tenant>#AUDIT`, sk `E#<seq, 20 digits>` (`kind = audit_entry`),
//!   the entry's fields with `payload` stored as its sorted JSON text (`crate::sorted_json`) (so
//!   what is verified is exactly what was hashed) and the envelope's
//!   `schema_version` as `event_schema_version`;
//! - the chain head: same pk, sk `HEAD` (`kind = audit_head`), `seq` and `hash`
//!   of the last entry, updated on the condition that `seq` is the expected one;
//! - one marker per appended event: pk `T#<tenant>#AUDIT#EVENT#<event_id>`,
//!   sk `AUDIT_EVENT` (`kind = audit_event`), written with `attribute_not_exists`
//!   in the same transaction as the entry, so an event is never appended twice.

use super::labels::AuditLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, to_item, value};
use crate::audit::chain::{AuditEntry, Checkpoint};
use crate::error::AppError;
use crate::sorted_json;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub const SCHEMA_VERSION: u32 = 1;
const ENTRY_KIND: &str = "audit_entry";
const MARKER_KIND: &str = "audit_event";
const HEAD_KIND: &str = "audit_head";
/// Actions one appended entry needs (entry + marker); the head takes one more per transaction.
pub const ACTIONS_PER_ENTRY: usize = 2;
const HEAD_SK: &str = "HEAD";
const MARKER_SK: &str = "AUDIT_EVENT";
const SEQ_DIGITS: usize = 20;

fn chain_pk(tenant: &str) -> String {
    tenant_pk(tenant, "AUDIT")
}

fn entry_sk(seq: u64) -> String {
    format!("E#{seq:0SEQ_DIGITS$}")
}

fn marker_pk(tenant: &str, event_id: &str) -> String {
    tenant_pk(tenant, &format!("AUDIT#EVENT#{event_id}"))
}

#[derive(Serialize, Deserialize)]
struct EntryItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    tenant_id: String,
    seq: u64,
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    aggregate_type: String,
    aggregate_id: String,
    occurred_at: String,
    correlation_id: String,
    event_schema_version: u32,
    payload: String,
    recorded_at: String,
    prev_hash: String,
    hash: String,
}

/// The chain head's own attributes (keys and kind come from [`Keyed`]).
#[derive(Serialize, Deserialize)]
struct Head {
    tenant_id: String,
    seq: u64,
    hash: String,
}

/// An event-id marker: the dedup record of an appended event.
#[derive(Serialize)]
struct Marker<'a> {
    tenant_id: &'a str,
    event_id: &'a str,
    seq: u64,
}

fn entry_item(entry: &AuditEntry) -> EntryItem {
    EntryItem {
        pk: chain_pk(&entry.tenant_id),
        sk: entry_sk(entry.seq),
        kind: ENTRY_KIND.to_owned(),
        schema_version: SCHEMA_VERSION,
        tenant_id: entry.tenant_id.clone(),
        seq: entry.seq,
        event_id: entry.event_id.clone(),
        event_type: entry.event_type.clone(),
        aggregate_type: entry.aggregate_type.clone(),
        aggregate_id: entry.aggregate_id.clone(),
        occurred_at: entry.occurred_at.clone(),
        correlation_id: entry.correlation_id.clone(),
        event_schema_version: entry.schema_version,
        payload: sorted_json::encode(&entry.payload),
        recorded_at: entry.recorded_at.clone(),
        prev_hash: entry.prev_hash.clone(),
        hash: entry.hash.clone(),
    }
}

fn decode_entry(item: Item) -> Result<AuditEntry, AppError> {
    let item: EntryItem = from_item(item)?;
    let payload =
        serde_json::from_str(&item.payload).map_err(|e| AppError::internal("decode audit payload", e))?;
    Ok(AuditEntry {
        seq: item.seq,
        event_id: item.event_id,
        tenant_id: item.tenant_id,
        event_type: item.event_type,
        aggregate_type: item.aggregate_type,
        aggregate_id: item.aggregate_id,
        occurred_at: item.occurred_at,
        correlation_id: item.correlation_id,
        schema_version: item.event_schema_version,
        payload,
        recorded_at: item.recorded_at,
        prev_hash: item.prev_hash,
        hash: item.hash,
    })
}

/// The chain head (strongly consistent), `None` for a tenant without entries.
pub async fn head(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Option<Checkpoint>, AppError> {
    let Some(item) = super::get(dynamodb, table, key(chain_pk(tenant), HEAD_SK)).await? else {
        return Ok(None);
    };
    let head: Head = from_item(item)?;
    Ok(Some(Checkpoint { seq: head.seq, hash: head.hash }))
}

/// The actions appending `entries` (consecutive, starting right after
/// `expected`) in one transaction: each entry and its event marker, and the
/// head moved from `expected` to the last entry.
pub fn append(
    table: &str,
    tenant: &str,
    expected: &Checkpoint,
    entries: &[AuditEntry],
) -> Result<Vec<Action<AuditLabel>>, AppError> {
    let Some(last) = entries.last() else { return Ok(Vec::new()) };
    let mut actions = Vec::with_capacity(entries.len() * ACTIONS_PER_ENTRY + 1);
    for entry in entries {
        actions.push(Action::put(
            table,
            AuditLabel::Entry,
            to_item(&entry_item(entry))?,
            Some("attribute_not_exists(pk)"),
            Expr::default(),
        )?);
        let marker = Marker { tenant_id: tenant, event_id: &entry.event_id, seq: entry.seq };
        actions.push(
            Keyed::new(marker_pk(tenant, &entry.event_id), MARKER_SK, MARKER_KIND, &marker)
                .version(SCHEMA_VERSION)
                .insert(table, AuditLabel::Marker)?,
        );
    }
    let head = if expected.seq == 0 {
        let head = Head { tenant_id: tenant.to_owned(), seq: last.seq, hash: last.hash.clone() };
        Keyed::new(chain_pk(tenant), HEAD_SK, HEAD_KIND, &head)
            .version(SCHEMA_VERSION)
            .insert(table, AuditLabel::Head)?
    } else {
        Action::update(
            table,
            AuditLabel::Head,
            key(chain_pk(tenant), HEAD_SK),
            "SET #seq = :seq, #hash = :hash",
            Some("#seq = :expected"),
            Expr::default()
                .name("#seq", "seq")
                .name("#hash", "hash")
                .value(":seq", value(last.seq)?)
                .value(":hash", AttributeValue::S(last.hash.clone()))
                .value(":expected", value(expected.seq)?),
        )?
    };
    actions.push(head);
    Ok(actions)
}

/// Every tenant that has an audit chain (a full scan: for the integrity check).
pub async fn tenants_with_chains(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<String>, AppError> {
    super::tenants_with(dynamodb, table, HEAD_KIND).await
}

/// The event id of a marker returned by a failed condition (`ALL_OLD`).
pub fn marker_event_id(item: &Item) -> Option<String> {
    match item.get("event_id") {
        Some(AttributeValue::S(id)) => Some(id.clone()),
        _ => None,
    }
}

/// Which of `event_ids` already have a marker (strongly consistent reads).
pub async fn appended_events(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    event_ids: &[String],
) -> Result<HashSet<String>, AppError> {
    let reads = event_ids.iter().map(|id| async move {
        super::get(dynamodb, table, key(marker_pk(tenant, id), MARKER_SK))
            .await
            .map(|item| item.map(|_| id.clone()))
    });
    let found = futures::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

/// One page of a tenant's entries with seq > `after_seq`, in seq order. An
/// entry that does not decode comes back as `Err(seq)`. The flag says whether
/// more entries may follow. One page, not a paginator: callers resume from
/// the last seq they verified or listed (the API's cursor), not from a key.
pub async fn entries_after(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    after_seq: u64,
    limit: i32,
) -> Result<(Vec<Result<AuditEntry, u64>>, bool), AppError> {
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
        .expression_attribute_values(":pk", AttributeValue::S(chain_pk(tenant)))
        .expression_attribute_values(":from", AttributeValue::S(entry_sk(after_seq.saturating_add(1))))
        .expression_attribute_values(":to", AttributeValue::S(entry_sk(u64::MAX)))
        .consistent_read(true)
        .limit(limit)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("query audit entries", e))?;
    let entries = output
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let seq = match item.get("sk") {
                Some(AttributeValue::S(sk)) => {
                    sk.strip_prefix("E#").and_then(|s| s.parse().ok()).unwrap_or(0)
                }
                _ => 0,
            };
            decode_entry(item).map_err(|error| {
                tracing::warn!(%error, seq, "undecodable audit entry");
                seq
            })
        })
        .collect();
    Ok((entries, output.last_evaluated_key.is_some()))
}

/// The seq of the oldest stored entry of `tenant` (strongly consistent).
pub async fn oldest_seq(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Option<u64>, AppError> {
    let (page, _) = entries_after(dynamodb, table, tenant, 0, 1).await?;
    Ok(page.first().map(|entry| match entry {
        Ok(entry) => entry.seq,
        Err(seq) => *seq,
    }))
}

/// Deletes `tenant`'s entries with seq <= `through` and their event
/// markers, oldest first (so what is left is always a suffix of the chain);
/// retention only, below a signed checkpoint. The count deleted.
pub async fn delete_through(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    through: u64,
) -> Result<u64, AppError> {
    let mut deleted = 0;
    loop {
        let (page, _) = entries_after(dynamodb, table, tenant, 0, 25).await?;
        let doomed: Vec<(u64, Option<String>)> = page
            .into_iter()
            .map(|entry| match entry {
                Ok(entry) => (entry.seq, Some(entry.event_id)),
                Err(seq) => (seq, None),
            })
            .filter(|(seq, _)| *seq <= through)
            .collect();
        if doomed.is_empty() {
            return Ok(deleted);
        }
        for (seq, event_id) in doomed {
            if let Some(event_id) = event_id {
                dynamodb
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key(marker_pk(tenant, &event_id), MARKER_SK)))
                    .send()
                    .await
                    .map_err(|e| AppError::from_sdk("delete audit event marker", e))?;
            }
            dynamodb
                .delete_item()
                .table_name(table)
                .set_key(Some(key(chain_pk(tenant), &entry_sk(seq))))
                .send()
                .await
                .map_err(|e| AppError::from_sdk("delete audit entry", e))?;
            deleted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_by_seq() {
        assert!(entry_sk(9) < entry_sk(10));
        assert!(entry_sk(u64::MAX - 1) < entry_sk(u64::MAX));
        assert_eq!(entry_sk(1).len(), 2 + SEQ_DIGITS);
    }
}
