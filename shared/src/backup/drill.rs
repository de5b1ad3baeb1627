//! Restore drills: the newest backup (or PITR at a time) restored into a
//! scratch table, timed (RTO evidence), verified, and deleted.

use super::backups::newest_backup;
use super::restore::{RestoreSource, source_table, start_restore, table_status, wait_active};
use super::verify::{Check, reapply_erasures, verify_restored};
use super::{BackupError, PointInTime, SERVICE, retention};
use crate::app::App;
use crate::clock::{Deadline, rfc3339};
use crate::error::AppError;
use crate::metrics::{MetricSet, Unit};
use aws_sdk_dynamodb::types::TableStatus;
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// Time kept back from the invocation's deadline for checks and clean-up.
const DRILL_MARGIN_MS: u64 = 120_000;

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub ok: bool,
    pub source_table: String,
    pub scratch_table: String,
    pub restored_from: RestoreSource,
    /// Wall time from the restore request to the table being ACTIVE: the RTO evidence.
    pub restore_seconds: f64,
    /// Restore plus checks.
    pub total_seconds: f64,
    pub checks: Vec<Check>,
    /// The erasure list re-applied to the restored copy before its checks.
    pub erasures: Option<crate::privacy::erasure::Reapplied>,
    pub scratch_table_deleted: bool,
    /// Scratch tables of earlier drills that were still there and were removed.
    pub stale_tables_deleted: Vec<String>,
    pub started_at: String,
}

/// A restore drill. `Err(BackupError::DrillFailed)` when a check fails or the
/// restore does not finish in time; the report is logged either way.
pub async fn drill(
    app: &App,
    point_in_time: Option<PointInTime>,
    table: Option<&str>,
    deadline: Deadline,
) -> Result<DrillReport, BackupError> {
    let table = source_table(app, table)?;
    let started = Instant::now();
    let started_at = rfc3339(app.now());
    let stale_tables_deleted = delete_stale_drill_tables(app, &table).await?;
    let source = drill_source(app, &table, point_in_time).await?;
    let scratch = scratch_name(app, &table)?;
    let expected = start_restore(app, &table, &scratch, &source, point_in_time).await?;
    let active = wait_active(app, &scratch, deadline, DRILL_MARGIN_MS).await;
    let restore_seconds = started.elapsed().as_secs_f64();
    let mut erasures = None;
    let checks = match active {
        Ok(true) => match reapply_erasures(app, &scratch).await {
            Ok((reapplied, erasure_check)) => {
                erasures = Some(reapplied);
                let mut checks = verify_restored(app, &scratch, expected).await.unwrap_or_else(|error| {
                    vec![Check { name: "verification".into(), ok: false, detail: json!(error.to_string()) }]
                });
                checks.insert(0, erasure_check);
                checks
            }
            Err(error) => {
                vec![Check { name: "erasures".into(), ok: false, detail: json!(error.to_string()) }]
            }
        },
        Ok(false) => vec![Check {
            name: "restore_time".into(),
            ok: false,
            detail: json!(format!(
                "the restore did not finish within the invocation ({restore_seconds:.0} s)"
            )),
        }],
        Err(error) => vec![Check { name: "restore".into(), ok: false, detail: json!(error.to_string()) }],
    };
    let scratch_table_deleted = delete_scratch(app, &scratch).await;
    let report = DrillReport {
        ok: checks.iter().all(|c| c.ok),
        source_table: table,
        scratch_table: scratch,
        restored_from: source,
        restore_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        checks,
        erasures,
        scratch_table_deleted,
        stale_tables_deleted,
        started_at,
    };
    conclude(app, report)
}

/// PITR at `point_in_time`, else the newest on-demand backup (none fails the drill).
async fn drill_source(
    app: &App,
    table: &str,
    point_in_time: Option<PointInTime>,
) -> Result<RestoreSource, BackupError> {
    if let Some(pit) = point_in_time {
        return Ok(RestoreSource::PointInTime { at: pit.describe() });
    }
    match newest_backup(app, table).await? {
        Some(backup) => Ok(RestoreSource::Backup {
            arn: backup.arn,
            name: backup.name,
            created_at: rfc3339(backup.created_at),
        }),
        None => {
            emit_drill_metrics(app, table, None, true);
            Err(AppError::Unprocessable(format!("no on-demand backup of {table} to drill")).into())
        }
    }
}

/// `<table>-drill-<UTC stamp>-<random>`.
fn scratch_name(app: &App, table: &str) -> Result<String, AppError> {
    let scratch = format!(
        "{}{}-{}",
        retention::drill_prefix(table),
        retention::compact_utc(app.now()),
        &crate::ids::new_id()[30..]
    );
    if !retention::valid_table_name(&scratch) {
        return Err(AppError::Internal("the drill table name is too long; shorten the table name".into()));
    }
    Ok(scratch)
}

/// Deletes the scratch table; `false` when it could not be (yet).
async fn delete_scratch(app: &App, scratch: &str) -> bool {
    match app.clients.dynamodb.delete_table().table_name(scratch).send().await {
        Ok(_) => true,
        Err(error) => {
            // A table still restoring cannot be deleted; the next drill removes it.
            tracing::warn!(table = %scratch, error = %AppError::from_sdk("delete scratch table", error), "scratch table left for the next drill");
            false
        }
    }
}

/// Emits the drill's metrics and logs its report; a failed check fails the drill.
fn conclude(app: &App, report: DrillReport) -> Result<DrillReport, BackupError> {
    emit_drill_metrics(app, &report.source_table, Some(&report), !report.ok);
    if report.ok {
        tracing::info!(report = %json!(report), "restore drill passed");
        return Ok(report);
    }
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.ok).map(|c| c.name.clone()).collect();
    tracing::error!(report = %json!(report), "restore drill FAILED");
    let table = report.source_table.clone();
    Err(BackupError::DrillFailed { table, failed: failed.join(", "), report: Box::new(report) })
}

fn emit_drill_metrics(app: &App, table: &str, report: Option<&DrillReport>, failed: bool) {
    let mut metrics = MetricSet::service(SERVICE)
        .count("DrillFailures", u64::from(failed))
        .count("Drills", 1)
        .property("table", table);
    if let Some(report) = report {
        metrics = metrics
            .metric("DrillRestoreSeconds", report.restore_seconds, Unit::Seconds)
            .property("scratch_table", report.scratch_table.as_str());
    }
    metrics.emit(app.now());
}

/// Deletes the ACTIVE scratch tables earlier drills of `table` left behind
/// (every page of ListTables).
async fn delete_stale_drill_tables(app: &App, table: &str) -> Result<Vec<String>, AppError> {
    let prefix = retention::drill_prefix(table);
    let mut deleted = Vec::new();
    let mut names = app.clients.dynamodb.list_tables().into_paginator().items().send();
    while let Some(name) = names.try_next().await.map_err(|e| AppError::from_sdk("list tables", e))? {
        if !name.starts_with(&prefix) {
            continue;
        }
        if table_status(app, &name).await? == Some(TableStatus::Active)
            && app.clients.dynamodb.delete_table().table_name(&name).send().await.is_ok()
        {
            deleted.push(name);
        }
    }
    Ok(deleted)
}
