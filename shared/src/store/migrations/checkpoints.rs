//! Segment checkpoints: `(segment, LastEvaluatedKey)` plus what the segment
//! counted so far, written with optimistic versioning (`pages`).

use super::{CHECKPOINT_KIND, is_condition_failure, n, run_pk, segment_sk};
use crate::error::AppError;
use crate::store::{from_item, get, key, query_prefix, to_item};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Item counts of a segment, a run or a history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Items of the kinds the run touches that the scan returned.
    pub items_scanned: u64,
    /// Items transformed (in a dry run: that would have been).
    pub items_changed: u64,
    /// Items found already at their target version (a redelivered page, a
    /// live writer that wrote the new shape, an item of an unaffected shape).
    pub items_current: u64,
    pub items_failed: u64,
    /// Items changed per migration version.
    #[serde(default)]
    pub changed_by_version: BTreeMap<String, u64>,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.items_scanned += other.items_scanned;
        self.items_changed += other.items_changed;
        self.items_current += other.items_current;
        self.items_failed += other.items_failed;
        for (version, count) in &other.changed_by_version {
            *self.changed_by_version.entry(version.clone()).or_default() += count;
        }
    }
}

/// A resume point: `(segment, LastEvaluatedKey)` plus what the segment counted so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub run_id: String,
    pub segment: u32,
    /// The scan's LastEvaluatedKey after the last checkpointed page; `None`
    /// before the first page and once the segment is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<BTreeMap<String, String>>,
    /// Pages checkpointed; the optimistic version of this item.
    pub pages: u64,
    pub done: bool,
    #[serde(flatten)]
    pub counters: Counters,
    /// Keys (pk) of the first failed items, for the report.
    #[serde(default)]
    pub failed_keys: Vec<String>,
    #[serde(default)]
    pub failed_reasons: Vec<String>,
}

impl Checkpoint {
    pub fn new(run_id: &str, segment: u32) -> Self {
        Self {
            run_id: run_id.to_owned(),
            segment,
            cursor: None,
            pages: 0,
            done: false,
            counters: Counters::default(),
            failed_keys: Vec::new(),
            failed_reasons: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    checkpoint: Checkpoint,
}

impl CheckpointItem {
    fn of(checkpoint: &Checkpoint) -> Self {
        Self {
            pk: run_pk(&checkpoint.run_id),
            sk: segment_sk(checkpoint.segment),
            kind: CHECKPOINT_KIND.into(),
            schema_version: 1,
            checkpoint: checkpoint.clone(),
        }
    }
}

pub async fn get_checkpoint(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    segment: u32,
) -> Result<Option<Checkpoint>, AppError> {
    match get(dynamodb, table, key(run_pk(run_id), &segment_sk(segment))).await? {
        Some(item) => Ok(Some(from_item::<CheckpointItem>(item)?.checkpoint)),
        None => Ok(None),
    }
}

/// Writes the checkpoint if nobody else advanced it since we read it
/// (`previous_pages`, `None` for a segment without a checkpoint yet).
/// `false`: another invocation works on this segment (a duplicate delivery).
pub async fn save_checkpoint(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    checkpoint: &Checkpoint,
    previous_pages: Option<u64>,
) -> Result<bool, AppError> {
    let item = to_item(&CheckpointItem::of(checkpoint))?;
    let request = dynamodb.put_item().table_name(table).set_item(Some(item));
    let request = match previous_pages {
        None => request.condition_expression("attribute_not_exists(pk)"),
        Some(pages) => {
            request.condition_expression("pages = :pages").expression_attribute_values(":pages", n(pages))
        }
    };
    match request.send().await {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("save checkpoint", error)),
    }
}

/// Every segment checkpoint of a run.
pub async fn checkpoints(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
) -> Result<Vec<Checkpoint>, AppError> {
    let items = query_prefix(dynamodb, table, run_pk(run_id), "SEGMENT#", "query migration items").await?;
    items.into_iter().map(|item| Ok(from_item::<CheckpointItem>(item)?.checkpoint)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::s;
    use super::*;

    #[test]
    fn checkpoint_round_trips_through_an_item() {
        let mut checkpoint = Checkpoint::new("r", 3);
        checkpoint.cursor = Some(BTreeMap::from([("pk".into(), "T#a#X".into()), ("sk".into(), "Y".into())]));
        checkpoint.counters.items_changed = 5;
        checkpoint.counters.changed_by_version.insert("2".into(), 5);
        let item = to_item(&CheckpointItem::of(&checkpoint)).unwrap();
        assert_eq!(item.get("sk"), Some(&s("SEGMENT#00003")));
        assert_eq!(from_item::<CheckpointItem>(item).unwrap().checkpoint, checkpoint);
    }
}
