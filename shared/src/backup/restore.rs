//! Restores: into a new table, from PITR or an on-demand backup, waited for
//! until ACTIVE, then completed (settings re-applied, verified) with the
//! steps to switch the stack over.

use super::backups::list_backups;
use super::settings::reapply_settings;
use super::switch::switch_steps;
use super::verify::{Check, reapply_erasures, verify_restored};
use super::{BackupError, PointInTime, retention};
use crate::app::App;
use crate::clock::{Deadline, rfc3339, to_sdk};
use crate::error::AppError;
use aws_sdk_dynamodb::types::TableStatus;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// Between two DescribeTable calls while a restore runs.
const RESTORE_POLL: Duration = Duration::from_secs(5);
/// Time kept back from the invocation's deadline when waiting for a restore.
const RESTORE_MARGIN_MS: u64 = 30_000;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RestoreSource {
    Backup { arn: String, name: String, created_at: String },
    PointInTime { at: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// `ready`, or `restoring` (invoke the same command again to finish).
    pub status: String,
    pub source_table: String,
    pub target_table: String,
    pub restored_from: RestoreSource,
    /// Settings a restore drops, re-applied on the target.
    pub reapplied: Vec<String>,
    /// The erasure list re-applied to the restored table before its checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasures: Option<crate::privacy::erasure::Reapplied>,
    pub checks: Vec<Check>,
    /// The exact steps to switch the stack over to the restored data.
    pub switch_steps: Vec<String>,
}

/// Restores into `target` (which must be named `<table>-restore-...`). Safe to
/// invoke again with the same arguments: an existing target is not restored
/// twice, only waited for and completed.
pub async fn restore(
    app: &App,
    target: &str,
    point_in_time: Option<PointInTime>,
    backup_arn: Option<&str>,
    source: Option<&str>,
    deadline: Deadline,
) -> Result<RestoreReport, BackupError> {
    let table = source_table(app, source)?;
    check_target(&table, target)?;
    let restored_from = match backup_arn {
        Some(arn) => backup_source(app, &table, arn).await?,
        None => RestoreSource::PointInTime { at: point_in_time.unwrap_or(PointInTime::Latest).describe() },
    };
    let expected = match table_status(app, target).await? {
        None => start_restore(app, &table, target, &restored_from, point_in_time).await?,
        Some(_) => {
            tracing::info!(target, "restore target exists; continuing the earlier restore");
            None
        }
    };
    let mut report = RestoreReport {
        status: "restoring".into(),
        source_table: table.clone(),
        target_table: target.to_owned(),
        restored_from,
        reapplied: Vec::new(),
        erasures: None,
        checks: Vec::new(),
        switch_steps: Vec::new(),
    };
    if !wait_active(app, target, deadline, RESTORE_MARGIN_MS).await? {
        tracing::warn!(target, "restore still running; invoke the same command again to finish it");
        return Ok(report);
    }
    report.reapplied = reapply_settings(app, target).await?;
    let (erasures, erasure_check) = reapply_erasures(app, target).await?;
    report.erasures = Some(erasures);
    report.checks = verify_restored(app, target, expected).await?;
    report.checks.insert(0, erasure_check);
    report.switch_steps = switch_steps(&table, target);
    report.status = "ready".into();
    tracing::info!(report = %json!(report), "restore ready");
    Ok(report)
}

/// A restore target must be a new table named `<table>-restore-<suffix>`.
fn check_target(table: &str, target: &str) -> Result<(), AppError> {
    let prefix = retention::restore_prefix(table);
    if !target.starts_with(&prefix) || target.len() == prefix.len() || !retention::valid_table_name(target) {
        return Err(AppError::bad_request(
            "target_table",
            format!("target_table must be a new table named {prefix}<suffix> (3-255 of A-Z a-z 0-9 _ . -)"),
        ));
    }
    Ok(())
}

/// The on-demand backup `arn` of `table` as a restore source.
async fn backup_source(app: &App, table: &str, arn: &str) -> Result<RestoreSource, AppError> {
    let backups = list_backups(app, table).await?;
    let backup = backups
        .into_iter()
        .find(|b| b.arn == arn)
        .ok_or_else(|| AppError::bad_request("backup_arn", format!("not an on-demand backup of {table}")))?;
    Ok(RestoreSource::Backup { arn: backup.arn, name: backup.name, created_at: rfc3339(backup.created_at) })
}

/// The table to restore: `requested` if it is a table of the stack, else the first.
pub(super) fn source_table(app: &App, requested: Option<&str>) -> Result<String, AppError> {
    let tables = &app.config.backup.tables;
    match requested {
        None => tables.first().cloned().ok_or_else(|| AppError::Internal("no table to back up".into())),
        Some(table) if tables.iter().any(|t| t == table) => Ok(table.to_owned()),
        Some(_) => Err(AppError::bad_request("table", "not a table of this stack")),
    }
}

/// Starts a restore of `source` into `target`; returns the item count the
/// restored table is expected to have.
pub(super) async fn start_restore(
    app: &App,
    table: &str,
    target: &str,
    source: &RestoreSource,
    pit: Option<PointInTime>,
) -> Result<Option<i64>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    match source {
        RestoreSource::Backup { arn, .. } => {
            let described = dynamodb
                .describe_backup()
                .backup_arn(arn)
                .send()
                .await
                .map_err(|e| AppError::from_sdk("describe backup", e))?;
            let expected = described
                .backup_description()
                .and_then(|d| d.source_table_details())
                .and_then(|d| d.item_count());
            dynamodb
                .restore_table_from_backup()
                .target_table_name(target)
                .backup_arn(arn)
                .send()
                .await
                .map_err(|e| AppError::from_sdk("restore table from backup", e))?;
            Ok(expected)
        }
        RestoreSource::PointInTime { .. } => {
            let expected = dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| AppError::from_sdk("describe source table", e))?
                .table()
                .and_then(|t| t.item_count());
            let request =
                dynamodb.restore_table_to_point_in_time().source_table_name(table).target_table_name(target);
            let request = match pit.unwrap_or(PointInTime::Latest) {
                PointInTime::Latest => request.use_latest_restorable_time(true),
                PointInTime::At(at) => request.restore_date_time(to_sdk(at)),
            };
            request.send().await.map_err(|e| AppError::from_sdk("restore table to point in time", e))?;
            Ok(expected)
        }
    }
}

/// `Some(status)` of a table, `None` if it does not exist.
pub(super) async fn table_status(app: &App, table: &str) -> Result<Option<TableStatus>, AppError> {
    match app.clients.dynamodb.describe_table().table_name(table).send().await {
        Ok(output) => Ok(output.table().and_then(|t| t.table_status()).cloned()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            Ok(None)
        }
        Err(error) => Err(AppError::from_sdk("describe table", error)),
    }
}

/// Waits until `table` is ACTIVE or the deadline (minus `margin_ms`) is near.
pub(super) async fn wait_active(
    app: &App,
    table: &str,
    deadline: Deadline,
    margin_ms: u64,
) -> Result<bool, AppError> {
    loop {
        if table_status(app, table).await? == Some(TableStatus::Active) {
            return Ok(true);
        }
        if deadline.within(app.clock.as_ref(), margin_ms + RESTORE_POLL.as_millis() as u64) {
            return Ok(false);
        }
        tokio::time::sleep(RESTORE_POLL).await;
    }
}
