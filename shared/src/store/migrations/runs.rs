//! Run items: one `up`/`down` command, its status, the segments finished
//! and the running total of failed items.

use super::{RUN_KIND, is_condition_failure, n, run_key, run_pk, s};
use crate::error::AppError;
use crate::store::{from_item, get, to_item};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

/// Which way a run moves items: towards newer layouts or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Its lease expired and another run took the lock over.
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// One `up`/`down` command and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub direction: Direction,
    /// The table's version when the run started.
    pub from_version: u32,
    pub to_version: u32,
    /// Versions of the migrations this run applies (up) or reverts (down).
    pub versions: Vec<u32>,
    pub total_segments: u32,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Running total over all segments, compared with the failure threshold.
    #[serde(default)]
    pub items_failed: u64,
}

#[derive(Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    run: RunRecord,
}

pub async fn create_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run: &RunRecord,
) -> Result<(), AppError> {
    let item = to_item(&RunItem {
        pk: run_pk(&run.run_id),
        sk: "RUN".into(),
        kind: RUN_KIND.into(),
        schema_version: 1,
        run: run.clone(),
    })?;
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| AppError::from_sdk("create migration run", e))?;
    Ok(())
}

pub async fn get_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
) -> Result<Option<RunRecord>, AppError> {
    match get(dynamodb, table, run_key(run_id)).await? {
        Some(item) => Ok(Some(from_item::<RunItem>(item)?.run)),
        None => Ok(None),
    }
}

/// Records `segment` as finished (a set add, so a redelivered message does
/// not count twice) and returns how many segments have finished.
pub async fn mark_segment_done(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    segment: u32,
) -> Result<usize, AppError> {
    let output = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(run_key(run_id)))
        .update_expression("ADD segments_done :segment")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":segment", AttributeValue::Ns(vec![segment.to_string()]))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("mark segment done", e))?;
    match output.attributes.as_ref().and_then(|a| a.get("segments_done")) {
        Some(AttributeValue::Ns(done)) => Ok(done.len()),
        _ => Err(AppError::Internal("segments_done missing after update".into())),
    }
}

/// Adds to the run's failed-item total and returns the new total.
pub async fn add_failed(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    failed: u64,
) -> Result<u64, AppError> {
    let output = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(run_key(run_id)))
        .update_expression("ADD items_failed :failed")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":failed", n(failed))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("count failed items", e))?;
    match output.attributes.as_ref().and_then(|a| a.get("items_failed")) {
        Some(AttributeValue::N(total)) => total.parse().map_err(|e| AppError::internal("items_failed", e)),
        _ => Err(AppError::Internal("items_failed missing after update".into())),
    }
}

/// Moves a running run to a final status; `false` if it was no longer running.
pub async fn finish_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    status: RunStatus,
    finished_at: &str,
    failure: Option<&str>,
) -> Result<bool, AppError> {
    let mut update = String::from("SET #status = :status, finished_at = :at");
    let mut request = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(run_key(run_id)))
        .condition_expression("#status = :running")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":status", s(status.as_str()))
        .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
        .expression_attribute_values(":at", s(finished_at));
    if let Some(reason) = failure {
        update.push_str(", failure = :failure");
        request = request.expression_attribute_values(":failure", s(reason));
    }
    match request.update_expression(update).send().await {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("finish migration run", error)),
    }
}
