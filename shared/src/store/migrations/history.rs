//! History entries: one per finished run, written once.

use super::{Counters, Direction, HISTORY_KIND, RunStatus, history_pk};
use crate::error::AppError;
use crate::store::{from_item, query_prefix, to_item};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRef {
    pub version: u32,
    pub name: String,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub run_id: String,
    pub direction: Direction,
    pub from_version: u32,
    pub to_version: u32,
    pub migrations: Vec<MigrationRef>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub segments: u32,
    #[serde(flatten)]
    pub counters: Counters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct HistoryItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    record: HistoryRecord,
}

/// Writes the history entry of a run once (a repeated finalization keeps the first).
pub async fn put_history(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    record: &HistoryRecord,
) -> Result<(), AppError> {
    let item = to_item(&HistoryItem {
        pk: history_pk(),
        sk: format!("RUN#{}", record.run_id),
        kind: HISTORY_KIND.into(),
        schema_version: 1,
        record: record.clone(),
    })?;
    crate::store::put_if_absent(dynamodb, table, item, "record migration history").await.map(|_| ())
}

/// Every history entry, oldest first.
pub async fn history(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<HistoryRecord>, AppError> {
    let items = query_prefix(dynamodb, table, history_pk(), "RUN#", "query migration items").await?;
    items.into_iter().map(|item| Ok(from_item::<HistoryItem>(item)?.record)).collect()
}
