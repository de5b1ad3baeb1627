//! The daily run: PITR ensured, a new on-demand backup, retention applied,
//! for every table of the stack.

use super::backups::{create_backup, delete_backup, list_backups};
use super::pitr::{PitrState, ensure_pitr};
use super::{BackupError, SERVICE, retention};
use crate::app::App;
use crate::clock::rfc3339;
use crate::metrics::{MetricSet, Unit};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableRun {
    pub table: String,
    pub pitr: PitrState,
    pub backup_name: Option<String>,
    pub backup_arn: Option<String>,
    pub pruned: Vec<String>,
    /// On-demand backups left after pruning.
    pub kept: usize,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub at: String,
    pub retention_days: u32,
    pub keep_newest: u32,
    pub backups_made: usize,
    pub backups_pruned: usize,
    pub tables: Vec<TableRun>,
}

/// The daily run over every table of the stack. Fails (after doing all it
/// can) when a table could not be backed up or PITR could not be ensured.
pub async fn run(app: &App) -> Result<RunSummary, BackupError> {
    let settings = &app.config.backup;
    let now = app.now();
    let mut summary = RunSummary {
        at: rfc3339(now),
        retention_days: settings.retention_days,
        keep_newest: settings.keep_newest,
        ..RunSummary::default()
    };
    for table in &settings.tables {
        let result = run_table(app, table, now).await;
        summary.backups_made += usize::from(result.backup_arn.is_some());
        summary.backups_pruned += result.pruned.len();
        emit_table_metrics(app, &result);
        summary.tables.push(result);
    }
    let failures: Vec<String> = summary
        .tables
        .iter()
        .flat_map(|t| t.errors.iter().map(move |e| format!("{}: {e}", t.table)))
        .collect();
    tracing::info!(
        backups_made = summary.backups_made,
        backups_pruned = summary.backups_pruned,
        failures = failures.len(),
        summary = %json!(summary),
        "backup run finished"
    );
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(BackupError::RunIncomplete(failures.join("; "), Box::new(summary)))
    }
}

fn emit_table_metrics(app: &App, result: &TableRun) {
    let mut metrics = MetricSet::service(SERVICE)
        .count("BackupsCreated", u64::from(result.backup_arn.is_some()))
        .count("BackupsPruned", result.pruned.len() as u64)
        .count("BackupFailures", u64::from(!result.errors.is_empty()))
        .count("PitrWasDisabled", u64::from(result.pitr.was_disabled))
        .property("table", result.table.as_str());
    if let Some(lag) = result.pitr.lag_seconds {
        metrics = metrics.metric("PitrLagSeconds", lag, Unit::Seconds);
    }
    metrics.emit(app.now());
}

async fn run_table(app: &App, table: &str, now: OffsetDateTime) -> TableRun {
    let mut result = TableRun { table: table.to_owned(), ..TableRun::default() };
    match ensure_pitr(app, table, now).await {
        Ok(pitr) => result.pitr = pitr,
        Err(error) => result.errors.push(format!("PITR: {error}")),
    }
    let name = retention::backup_name(table, now);
    match create_backup(app, table, &name).await {
        Ok(arn) => {
            result.backup_name = Some(name);
            result.backup_arn = Some(arn);
        }
        Err(error) => {
            tracing::error!(table, error = %error, "on-demand backup failed");
            result.errors.push(format!("backup: {error}"));
        }
    }
    prune(app, table, now, &mut result).await;
    result
}

/// Deletes what retention no longer keeps, recording what it deleted and kept.
async fn prune(app: &App, table: &str, now: OffsetDateTime, result: &mut TableRun) {
    let backups = match list_backups(app, table).await {
        Ok(backups) => backups,
        Err(error) => return result.errors.push(format!("list backups: {error}")),
    };
    let settings = &app.config.backup;
    let doomed = retention::to_prune(&backups, now, settings.retention_days, settings.keep_newest);
    for backup in &doomed {
        match delete_backup(app, &backup.arn).await {
            Ok(()) => result.pruned.push(backup.name.clone()),
            Err(error) => {
                tracing::error!(table, backup = %backup.name, error = %error, "pruning a backup failed");
                result.errors.push(format!("prune {}: {error}", backup.name));
            }
        }
    }
    result.kept = backups.iter().filter(|b| b.available).count() - result.pruned.len();
}
