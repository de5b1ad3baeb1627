//! `{"action":"status"}`: the table's version, what is applied and pending,
//! the history, and the progress of the run holding the lock.

use super::{Direction, Migration, Phase, current_version, plan, registry};
use crate::app::App;
use crate::clock::{epoch_ms, rfc3339_ms_or_number};
use crate::error::AppError;
use crate::store::migrations::{self as store, Counters, HistoryRecord, RunRecord, RunStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct MigrationInfo {
    pub version: u32,
    pub name: &'static str,
    pub description: &'static str,
    pub phase: Phase,
    pub kinds: &'static [&'static str],
}

impl From<&Migration> for MigrationInfo {
    fn from(m: &Migration) -> Self {
        Self {
            version: m.version,
            name: m.name,
            description: m.description,
            phase: m.phase,
            kinds: m.kinds(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: &'static str,
    pub phase: Phase,
    pub run_id: String,
    pub direction: Direction,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub items_scanned: u64,
    pub items_changed: u64,
    pub items_failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    pub run: RunRecord,
    pub lease_expires_at: String,
    pub lease_expired: bool,
    pub segments_done: u32,
    pub pages: u64,
    pub counters: Counters,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub current_version: u32,
    pub latest_version: u32,
    pub applied: Vec<AppliedMigration>,
    pub pending: Vec<MigrationInfo>,
    /// Every run, oldest first (dry runs and failed runs included).
    pub history: Vec<HistoryRecord>,
    pub running: Option<RunProgress>,
}

/// `{"action":"status"}`.
pub async fn status(app: &App) -> Result<StatusReport, AppError> {
    let migrations = registry()?;
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let history = store::history(db, table).await?;
    let current = current_version(&history);
    let applied =
        migrations.iter().filter(|m| m.version <= current).filter_map(|m| applied_by(m, &history)).collect();
    let pending = migrations.iter().filter(|m| m.version > current).map(MigrationInfo::from).collect();
    Ok(StatusReport {
        current_version: current,
        latest_version: plan::latest(migrations),
        applied,
        pending,
        history,
        running: running(app).await?,
    })
}

/// The last successful real `up` run that applied `m`.
fn applied_by(m: &Migration, history: &[HistoryRecord]) -> Option<AppliedMigration> {
    let run = history.iter().rev().find(|h| {
        h.status == RunStatus::Succeeded
            && !h.dry_run
            && h.direction == Direction::Up
            && h.migrations.iter().any(|r| r.version == m.version)
    })?;
    Some(AppliedMigration {
        version: m.version,
        name: m.name,
        phase: m.phase,
        run_id: run.run_id.clone(),
        direction: run.direction,
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        duration_ms: run.duration_ms,
        items_scanned: run.counters.items_scanned,
        items_changed: run.counters.changed_by_version.get(&m.version.to_string()).copied().unwrap_or(0),
        items_failed: run.counters.items_failed,
    })
}

/// The run holding the lock, with its checkpoints summed.
async fn running(app: &App) -> Result<Option<RunProgress>, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let Some(lease) = store::read_lock(db, table).await? else { return Ok(None) };
    let Some(run) = store::get_run(db, table, &lease.owner).await? else { return Ok(None) };
    let checkpoints = store::checkpoints(db, table, &run.run_id).await?;
    let mut counters = Counters::default();
    checkpoints.iter().for_each(|c| counters.add(&c.counters));
    Ok(Some(RunProgress {
        lease_expires_at: rfc3339_ms_or_number(lease.lease_expires_at_ms),
        lease_expired: lease.lease_expires_at_ms < epoch_ms(app.now()),
        segments_done: u32::try_from(checkpoints.iter().filter(|c| c.done).count()).unwrap_or(u32::MAX),
        pages: checkpoints.iter().map(|c| c.pages).sum(),
        counters,
        run,
    }))
}
