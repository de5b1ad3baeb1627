//! The backup job: PITR kept on, daily on-demand backups with retention,
//! restore drills that verify a restored copy, and restores for recovery.
//!
//! - [`run`] (`{"action":"run"}`, the daily schedule): for every table of the
//!   stack, turns PITR back on if someone turned it off (loudly), creates the
//!   backup `<table>-<UTC timestamp>`, deletes on-demand backups older than the
//!   retention except the newest N, and reports the PITR lag (the RPO achieved).
//! - [`drill`] (`{"action":"drill"}`): restores the newest backup (or PITR at
//!   a time) into `<table>-drill-<stamp>`, measures the restore (RTO evidence),
//!   checks the item count, the ledger and every tenant's audit chain on the
//!   RESTORED table, and deletes it. Any failed check fails the drill.
//! - [`restore`] (`{"action":"restore","target_table":"<table>-restore-..."}`):
//!   restores at a point in time (or from a backup) into a new table,
//!   re-applies what a restore drops (TTL, stream, PITR), verifies it like a
//!   drill, and returns the exact steps to switch the stack over (docs/RUNBOOK.md).
//!
//! Metrics (EMF, namespace `CAAS`, dimension `Service=backup`): BackupsCreated,
//! BackupsPruned, BackupFailures, PitrLagSeconds, PitrWasDisabled,
//! DrillRestoreSeconds, DrillFailures. template.yaml alarms on DrillFailures,
//! PitrWasDisabled and a missing BackupsCreated.

pub mod retention;

use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::metrics::{MetricSet, Unit};
use crate::migrate::Deadline;
use crate::store::TTL_ATTRIBUTE;
use crate::store::migrations::census;
use aws_sdk_dynamodb::types::{
    BackupStatus, BackupTypeFilter, PointInTimeRecoverySpecification, PointInTimeRecoveryStatus,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use retention::BackupEntry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SERVICE: &str = "backup";
/// Parallel-scan segments of a drill's item count.
const CENSUS_SEGMENTS: u32 = 4;
/// Between two DescribeTable calls while a restore runs.
const RESTORE_POLL: Duration = Duration::from_secs(5);
/// Time kept back from the invocation's deadline for checks and clean-up.
const DRILL_MARGIN_MS: u64 = 120_000;

/// A direct-invoke or scheduled command of the `backup` function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Command {
    Run,
    Drill {
        /// `"latest"` or RFC 3339: restore PITR at that time instead of the
        /// newest on-demand backup.
        #[serde(default)]
        point_in_time: Option<String>,
        /// Default: the first table of `BACKUP_TABLES`.
        #[serde(default)]
        table: Option<String>,
    },
    Restore {
        target_table: String,
        /// `"latest"` (default) or RFC 3339.
        #[serde(default)]
        point_in_time: Option<String>,
        /// Restore this on-demand backup instead of PITR.
        #[serde(default)]
        backup_arn: Option<String>,
        #[serde(default)]
        source_table: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("restore drill of {table} failed: {failed}")]
    DrillFailed { table: String, failed: String, report: Box<DrillReport> },
    #[error("backup run incomplete: {0}")]
    RunIncomplete(String, Box<RunSummary>),
    #[error(transparent)]
    App(#[from] AppError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInTime {
    Latest,
    At(OffsetDateTime),
}

impl PointInTime {
    pub fn parse(text: &str) -> Result<Self, AppError> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        OffsetDateTime::parse(text, &Rfc3339).map(Self::At).map_err(|_| {
            AppError::bad_request("point_in_time", "point_in_time must be \"latest\" or an RFC 3339 time")
        })
    }

    fn describe(self) -> String {
        match self {
            PointInTime::Latest => "latest".into(),
            PointInTime::At(at) => rfc3339(at),
        }
    }
}

fn to_time(at: &aws_smithy_types::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok()
}

fn to_smithy(at: OffsetDateTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(at.unix_timestamp_nanos())
        .unwrap_or_else(|_| aws_smithy_types::DateTime::from_secs(at.unix_timestamp()))
}

// ------------------------------------------------------------------ run

#[derive(Debug, Clone, Default, Serialize)]
pub struct PitrState {
    /// PITR was off when the run started (and has been turned back on).
    pub was_disabled: bool,
    pub enabled: bool,
    pub earliest_restorable: Option<String>,
    pub latest_restorable: Option<String>,
    /// Now minus the latest restorable time: the recovery point actually achieved.
    pub lag_seconds: Option<f64>,
}

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
        let mut metrics = MetricSet::service(SERVICE)
            .count("BackupsCreated", u64::from(result.backup_arn.is_some()))
            .count("BackupsPruned", result.pruned.len() as u64)
            .count("BackupFailures", u64::from(!result.errors.is_empty()))
            .count("PitrWasDisabled", u64::from(result.pitr.was_disabled))
            .property("table", table.as_str());
        if let Some(lag) = result.pitr.lag_seconds {
            metrics = metrics.metric("PitrLagSeconds", lag, Unit::Seconds);
        }
        metrics.emit(app.now());
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
    match list_backups(app, table).await {
        Ok(backups) => {
            let doomed = retention::to_prune(
                &backups,
                now,
                app.config.backup.retention_days,
                app.config.backup.keep_newest,
            );
            for backup in &doomed {
                match app.clients.dynamodb.delete_backup().backup_arn(&backup.arn).send().await {
                    Ok(_) => result.pruned.push(backup.name.clone()),
                    Err(error) => {
                        let error = AppError::from_sdk("delete backup", error);
                        tracing::error!(table, backup = %backup.name, error = %error, "pruning a backup failed");
                        result.errors.push(format!("prune {}: {error}", backup.name));
                    }
                }
            }
            result.kept = backups.iter().filter(|b| b.available).count() - result.pruned.len();
        }
        Err(error) => result.errors.push(format!("list backups: {error}")),
    }
    result
}

/// PITR on, turning it back on (and saying so at error level) if it was off.
pub async fn ensure_pitr(app: &App, table: &str, now: OffsetDateTime) -> Result<PitrState, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut state = describe_pitr(app, table, now).await?;
    if !state.enabled {
        tracing::error!(table, "point-in-time recovery was DISABLED on a stack table; turning it back on");
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| AppError::internal("build PITR specification", e))?;
        dynamodb
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enable PITR", e))?;
        state = describe_pitr(app, table, now).await?;
        state.was_disabled = true;
    }
    Ok(state)
}

async fn describe_pitr(app: &App, table: &str, now: OffsetDateTime) -> Result<PitrState, AppError> {
    let output = app
        .clients
        .dynamodb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe continuous backups", e))?;
    let description =
        output.continuous_backups_description().and_then(|d| d.point_in_time_recovery_description());
    let status = description.and_then(|d| d.point_in_time_recovery_status());
    let latest = description.and_then(|d| d.latest_restorable_date_time()).and_then(to_time);
    let earliest = description.and_then(|d| d.earliest_restorable_date_time()).and_then(to_time);
    Ok(PitrState {
        was_disabled: false,
        enabled: matches!(status, Some(PointInTimeRecoveryStatus::Enabled)),
        earliest_restorable: earliest.map(rfc3339),
        latest_restorable: latest.map(rfc3339),
        lag_seconds: latest.map(|at| ((now - at).as_seconds_f64()).max(0.0)),
    })
}

async fn create_backup(app: &App, table: &str, name: &str) -> Result<String, AppError> {
    let output = app
        .clients
        .dynamodb
        .create_backup()
        .table_name(table)
        .backup_name(name)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("create backup", e))?;
    output
        .backup_details()
        .map(|d| d.backup_arn().to_owned())
        .ok_or_else(|| AppError::Internal("CreateBackup returned no details".into()))
}

/// The on-demand (USER) backups of `table`, every page. The table filter is
/// re-applied here: some implementations of ListBackups ignore parts of it.
pub async fn list_backups(app: &App, table: &str) -> Result<Vec<BackupEntry>, AppError> {
    let mut entries = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let output = app
            .clients
            .dynamodb
            .list_backups()
            .table_name(table)
            .backup_type(BackupTypeFilter::User)
            .set_exclusive_start_backup_arn(start)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("list backups", e))?;
        for summary in output.backup_summaries() {
            let user = summary.backup_type().is_none_or(|t| t.as_str() == "USER");
            if summary.table_name() != Some(table) || !user {
                continue;
            }
            let (Some(arn), Some(created)) =
                (summary.backup_arn(), summary.backup_creation_date_time().and_then(to_time))
            else {
                continue;
            };
            entries.push(BackupEntry {
                arn: arn.to_owned(),
                name: summary.backup_name().unwrap_or_default().to_owned(),
                created_at: created,
                available: matches!(summary.backup_status(), Some(BackupStatus::Available)),
            });
        }
        start = output.last_evaluated_backup_arn().map(str::to_owned);
        if start.is_none() {
            return Ok(entries);
        }
    }
}

// ------------------------------------------------------------------ restores

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RestoreSource {
    Backup { arn: String, name: String, created_at: String },
    PointInTime { at: String },
}

/// Starts a restore of `source` into `target`; returns the item count the
/// restored table is expected to have.
async fn start_restore(
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
                PointInTime::At(at) => request.restore_date_time(to_smithy(at)),
            };
            request.send().await.map_err(|e| AppError::from_sdk("restore table to point in time", e))?;
            Ok(expected)
        }
    }
}

/// `Some(status)` of a table, `None` if it does not exist.
async fn table_status(app: &App, table: &str) -> Result<Option<TableStatus>, AppError> {
    match app.clients.dynamodb.describe_table().table_name(table).send().await {
        Ok(output) => Ok(output.table().and_then(|t| t.table_status()).cloned()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            Ok(None)
        }
        Err(error) => Err(AppError::from_sdk("describe table", error)),
    }
}

/// Waits until `table` is ACTIVE or the deadline (minus `margin_ms`) is near.
async fn wait_active(app: &App, table: &str, deadline: Deadline, margin_ms: u64) -> Result<bool, AppError> {
    loop {
        if table_status(app, table).await? == Some(TableStatus::Active) {
            return Ok(true);
        }
        if deadline.remaining_ms().is_some_and(|left| left < margin_ms + RESTORE_POLL.as_millis() as u64) {
            return Ok(false);
        }
        tokio::time::sleep(RESTORE_POLL).await;
    }
}

async fn newest_backup(app: &App, table: &str) -> Result<Option<BackupEntry>, AppError> {
    let mut backups: Vec<BackupEntry> =
        list_backups(app, table).await?.into_iter().filter(|b| b.available).collect();
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name)));
    Ok(backups.into_iter().next())
}

fn source_table(app: &App, requested: Option<&str>) -> Result<String, AppError> {
    let tables = &app.config.backup.tables;
    match requested {
        None => tables.first().cloned().ok_or_else(|| AppError::Internal("no table to back up".into())),
        Some(table) if tables.iter().any(|t| t == table) => Ok(table.to_owned()),
        Some(_) => Err(AppError::bad_request("table", "not a table of this stack")),
    }
}

/// One verification of a restored table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: Value,
}

/// Runs every check against `restored`: the item count window, the ledger,
/// and the audit chain of every tenant found on the restored table.
pub async fn verify_restored(
    app: &App,
    restored: &str,
    expected_items: Option<i64>,
) -> Result<Vec<Check>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut checks = Vec::new();
    let found = census(dynamodb, restored, CENSUS_SEGMENTS).await?;
    let tolerance = app.config.backup.drill_count_tolerance_percent;
    let count_ok = match expected_items.map(u64::try_from) {
        Some(Ok(expected)) => retention::count_within_window(expected, found.items, tolerance),
        _ => found.items > 0,
    };
    checks.push(Check {
        name: "item_count".into(),
        ok: count_ok,
        detail: json!({ "expected": expected_items, "restored": found.items, "tolerance_percent": tolerance }),
    });
    checks.extend(verify_tenants(app, restored, &found.tenants).await?);
    Ok(checks)
}

/// The domain verifications of a restored table: the ledger (Σ = 0 per
/// currency, stored balances = replayed balances) and the audit chain of every
/// tenant found on it.
async fn verify_tenants(
    app: &App,
    restored: &str,
    tenants: &std::collections::BTreeSet<String>,
) -> Result<Vec<Check>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut checks = Vec::new();
    let ledger = crate::ledger::verify::verify_ledger(dynamodb, restored, None).await?;
    checks.push(Check { name: "ledger".into(), ok: ledger.ok, detail: json!(ledger) });
    let mut broken = Vec::new();
    let mut entries = 0u64;
    for tenant in tenants {
        let Ok(id) = crate::tenant::TenantId::parse(tenant) else { continue };
        let report = crate::audit::verify_chain(dynamodb, restored, &id).await?;
        entries += report.entries_checked;
        if !report.ok {
            broken.push(json!({ "tenant": tenant, "report": report }));
        }
    }
    checks.push(Check {
        name: "audit_chains".into(),
        ok: broken.is_empty(),
        detail: json!({ "tenants": tenants.len(), "entries_checked": entries, "broken": broken }),
    });
    Ok(checks)
}

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
    let source = match point_in_time {
        Some(pit) => RestoreSource::PointInTime { at: pit.describe() },
        None => match newest_backup(app, &table).await? {
            Some(backup) => RestoreSource::Backup {
                arn: backup.arn,
                name: backup.name,
                created_at: rfc3339(backup.created_at),
            },
            None => {
                emit_drill_metrics(app, &table, None, true);
                return Err(
                    AppError::Unprocessable(format!("no on-demand backup of {table} to drill")).into()
                );
            }
        },
    };
    let scratch = format!(
        "{}{}-{}",
        retention::drill_prefix(&table),
        retention::compact_utc(app.now()),
        &crate::ids::new_id()[30..]
    );
    if !retention::valid_table_name(&scratch) {
        return Err(
            AppError::Internal("the drill table name is too long; shorten the table name".into()).into()
        );
    }
    let expected = start_restore(app, &table, &scratch, &source, point_in_time).await?;
    let active = wait_active(app, &scratch, deadline, DRILL_MARGIN_MS).await;
    let restore_seconds = started.elapsed().as_secs_f64();
    let checks = match active {
        Ok(true) => match verify_restored(app, &scratch, expected).await {
            Ok(checks) => checks,
            Err(error) => {
                vec![Check { name: "verification".into(), ok: false, detail: json!(error.to_string()) }]
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
    let scratch_table_deleted = match app.clients.dynamodb.delete_table().table_name(&scratch).send().await {
        Ok(_) => true,
        Err(error) => {
            // A table still restoring cannot be deleted; the next drill removes it.
            tracing::warn!(table = %scratch, error = %AppError::from_sdk("delete scratch table", error), "scratch table left for the next drill");
            false
        }
    };
    let ok = checks.iter().all(|c| c.ok);
    let report = DrillReport {
        ok,
        source_table: table.clone(),
        scratch_table: scratch,
        restored_from: source,
        restore_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        checks,
        scratch_table_deleted,
        stale_tables_deleted,
        started_at,
    };
    emit_drill_metrics(app, &table, Some(&report), !ok);
    if ok {
        tracing::info!(report = %json!(report), "restore drill passed");
        Ok(report)
    } else {
        let failed: Vec<String> = report.checks.iter().filter(|c| !c.ok).map(|c| c.name.clone()).collect();
        tracing::error!(report = %json!(report), "restore drill FAILED");
        Err(BackupError::DrillFailed { table, failed: failed.join(", "), report: Box::new(report) })
    }
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

async fn delete_stale_drill_tables(app: &App, table: &str) -> Result<Vec<String>, AppError> {
    let prefix = retention::drill_prefix(table);
    let mut deleted = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let output = app
            .clients
            .dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("list tables", e))?;
        for name in output.table_names().iter().filter(|n| n.starts_with(&prefix)) {
            if table_status(app, name).await? == Some(TableStatus::Active)
                && app.clients.dynamodb.delete_table().table_name(name).send().await.is_ok()
            {
                deleted.push(name.clone());
            }
        }
        start = output.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() {
            return Ok(deleted);
        }
    }
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
    let prefix = retention::restore_prefix(&table);
    if !target.starts_with(&prefix) || target.len() == prefix.len() || !retention::valid_table_name(target) {
        return Err(AppError::bad_request(
            "target_table",
            format!("target_table must be a new table named {prefix}<suffix> (3-255 of A-Z a-z 0-9 _ . -)"),
        )
        .into());
    }
    let restored_from = match backup_arn {
        Some(arn) => {
            let backups = list_backups(app, &table).await?;
            let backup = backups.into_iter().find(|b| b.arn == arn).ok_or_else(|| {
                AppError::bad_request("backup_arn", format!("not an on-demand backup of {table}"))
            })?;
            RestoreSource::Backup {
                arn: backup.arn,
                name: backup.name,
                created_at: rfc3339(backup.created_at),
            }
        }
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
        checks: Vec::new(),
        switch_steps: Vec::new(),
    };
    if !wait_active(app, target, deadline, 30_000).await? {
        tracing::warn!(target, "restore still running; invoke the same command again to finish it");
        return Ok(report);
    }
    report.reapplied = reapply_settings(app, target).await?;
    report.checks = verify_restored(app, target, expected).await?;
    report.switch_steps = switch_steps(&table, target);
    report.status = "ready".into();
    tracing::info!(report = %json!(report), "restore ready");
    Ok(report)
}

/// What a restore does not carry over: TTL, the stream, PITR. Idempotent.
pub async fn reapply_settings(app: &App, table: &str) -> Result<Vec<String>, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut applied = Vec::new();
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe TTL", e))?;
    let ttl_on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !ttl_on {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| AppError::internal("build TTL specification", e))?;
        dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enable TTL", e))?;
        applied.push(format!("ttl:{TTL_ATTRIBUTE}"));
    }
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe table", e))?;
    let stream_on =
        described.table().and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled());
    if !stream_on {
        let spec = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .map_err(|e| AppError::internal("build stream specification", e))?;
        dynamodb
            .update_table()
            .table_name(table)
            .stream_specification(spec)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enable stream", e))?;
        applied.push("stream:NEW_AND_OLD_IMAGES".into());
    }
    let pitr = ensure_pitr(app, table, app.now()).await?;
    if pitr.was_disabled {
        applied.push("point_in_time_recovery".into());
    }
    Ok(applied)
}

/// The switch-over procedure (docs/RUNBOOK.md explains each step): the live
/// table is replaced in place, under its own name, so every ARN, IAM policy
/// and the stack itself stay valid.
pub fn switch_steps(live: &str, restored: &str) -> Vec<String> {
    let snapshot = format!("{restored}-switch");
    vec![
        "Freeze writes: for f in $(aws cloudformation describe-stack-resources --stack-name \"$STACK\" --query \"StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId\" --output text); do aws lambda put-function-concurrency --function-name \"$f\" --reserved-concurrent-executions 0; done".to_owned(),
        format!("Keep the live data: aws dynamodb create-backup --table-name {live} --backup-name {live}-before-switch"),
        format!("Snapshot the verified restore: aws dynamodb create-backup --table-name {restored} --backup-name {snapshot} --query BackupDetails.BackupArn --output text  # -> $ARN"),
        format!("Remove the live table: aws dynamodb delete-table --table-name {live} && aws dynamodb wait table-not-exists --table-name {live}"),
        format!("Restore under the live name: aws dynamodb restore-table-from-backup --target-table-name {live} --backup-arn \"$ARN\" --sse-specification-override Enabled=true,SSEType=KMS,KMSMasterKeyId=alias/$STACK-data && aws dynamodb wait table-exists --table-name {live}"),
        format!("Re-apply what a restore drops: aws dynamodb update-time-to-live --table-name {live} --time-to-live-specification Enabled=true,AttributeName={TTL_ATTRIBUTE} && aws dynamodb update-continuous-backups --table-name {live} --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true && aws dynamodb update-table --table-name {live} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"),
        format!("Re-point the stream triggers to the new stream: NEW=$(aws dynamodb describe-table --table-name {live} --query Table.LatestStreamArn --output text); for each mapping of the old stream (aws lambda list-event-source-mappings --function-name <stream function>): aws lambda delete-event-source-mapping --uuid <uuid>, then aws lambda create-event-source-mapping --function-name <stream function> --event-source-arn \"$NEW\" --starting-position TRIM_HORIZON --function-response-types ReportBatchItemFailures --filter-criteria <same filters as template.yaml>"),
        "Verify the live table: aws lambda invoke --function-name <VerifyFunction> --payload '{}' /dev/stdout (ledger and audit chains must be ok)".to_owned(),
        "Unfreeze writes: for each function above: aws lambda delete-function-concurrency --function-name \"$f\"".to_owned(),
        format!("Clean up when satisfied: aws dynamodb delete-table --table-name {restored}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(serde_json::from_str::<Command>(r#"{"action":"run"}"#).unwrap(), Command::Run);
        assert_eq!(
            serde_json::from_str::<Command>(r#"{"action":"drill","point_in_time":"latest"}"#).unwrap(),
            Command::Drill { point_in_time: Some("latest".into()), table: None }
        );
        assert!(serde_json::from_str::<Command>(r#"{"action":"restore"}"#).is_err(), "a target is required");
    }

    #[test]
    fn points_in_time() {
        assert_eq!(PointInTime::parse("latest").unwrap(), PointInTime::Latest);
        assert!(matches!(PointInTime::parse("2026-01-01T00:00:00Z").unwrap(), PointInTime::At(_)));
        assert!(PointInTime::parse("yesterday").is_err());
    }

    #[test]
    fn switch_steps_name_both_tables() {
        let steps = switch_steps("live-t", "live-t-restore-1");
        assert!(steps.iter().any(|s| s.contains("delete-table --table-name live-t ")));
        assert!(steps.iter().any(|s| s.contains("--target-table-name live-t ")));
        assert!(steps.last().is_some_and(|s| s.contains("live-t-restore-1")));
    }
}
