//! `{"action":"up"|"down", ...}`: checks the request, takes the lease lock,
//! records the run and enqueues one job per scan segment.

use super::queue::{enqueue, jobs_queue};
use super::{
    BASE_VERSION, Direction, Job, MAX_SEGMENTS, Migration, SegmentJob, close_run, current_version,
    migration_refs, plan, registry,
};
use crate::app::App;
use crate::clock::{epoch_ms, rfc3339, rfc3339_ms_or_number};
use crate::error::AppError;
use crate::metrics::MetricSet;
use crate::store::migrations::{self as store, Acquire, Lease, MigrationRef, RunRecord, RunStatus};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize)]
pub struct RunStarted {
    pub run_id: String,
    pub status: RunStatus,
    pub direction: Direction,
    pub from_version: u32,
    pub to_version: u32,
    pub migrations: Vec<MigrationRef>,
    pub segments: u32,
    pub dry_run: bool,
    /// A previous run whose lease had expired and which this run replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned_run: Option<String>,
}

/// Takes the lock, records the run and enqueues one job per segment. A
/// second run while one holds the lock is a [`AppError::Conflict`] naming
/// the holder.
pub async fn start(
    app: &App,
    direction: Direction,
    to: Option<u32>,
    segments: Option<u32>,
    dry_run: bool,
) -> Result<RunStarted, AppError> {
    let migrations = registry()?;
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let (to, segments) = checked_request(app, migrations, to, segments)?;
    let queue = jobs_queue(app)?;
    let current = current_version(&store::history(db, table).await?);
    let versions = versions_to_run(migrations, direction, current, to)?;
    let run_id = crate::ids::new_id();
    let now = app.now();
    let abandoned_run = take_lock(app, &run_id, now).await?;
    let run = RunRecord {
        run_id: run_id.clone(),
        direction,
        from_version: current,
        to_version: to,
        versions: versions.clone(),
        total_segments: segments,
        dry_run,
        status: RunStatus::Running,
        started_at: rfc3339(now),
        finished_at: None,
        failure: None,
        items_failed: 0,
    };
    launch(app, queue, &run).await?;
    tracing::info!(run_id = %run_id, direction = direction.as_str(), from = current, to, segments, dry_run, "migration run started");
    MetricSet::service("migrate")
        .count("MigrationRunsStarted", 1)
        .property("run_id", run_id.as_str())
        .emit(app.now());
    Ok(RunStarted {
        run_id,
        status: RunStatus::Running,
        direction,
        from_version: current,
        to_version: to,
        migrations: migration_refs(migrations, &versions),
        segments,
        dry_run,
        abandoned_run,
    })
}

/// The target version (default: the latest) and the segment count (default:
/// the configured one), each within its bounds.
fn checked_request(
    app: &App,
    migrations: &[Migration],
    to: Option<u32>,
    segments: Option<u32>,
) -> Result<(u32, u32), AppError> {
    let latest = plan::latest(migrations);
    let to = to.unwrap_or(latest);
    if !(BASE_VERSION..=latest).contains(&to) {
        return Err(AppError::bad_request("to", format!("to must be between {BASE_VERSION} and {latest}")));
    }
    let segments = segments.unwrap_or(app.config.migrate.default_segments);
    if !(1..=MAX_SEGMENTS).contains(&segments) {
        return Err(AppError::bad_request(
            "segments",
            format!("segments must be between 1 and {MAX_SEGMENTS}"),
        ));
    }
    Ok((to, segments))
}

/// The versions a run from `current` to `to` applies (up) or reverts (down).
fn versions_to_run(
    migrations: &[Migration],
    direction: Direction,
    current: u32,
    to: u32,
) -> Result<Vec<u32>, AppError> {
    let versions = migrations.iter().map(|m| m.version);
    match direction {
        Direction::Up if to < current => Err(AppError::bad_request(
            "to",
            format!("the table is at version {current}; use down to go to {to}"),
        )),
        Direction::Down if to > current => Err(AppError::bad_request(
            "to",
            format!("the table is at version {current}; use up to go to {to}"),
        )),
        Direction::Up => Ok(versions.filter(|v| *v > current && *v <= to).collect()),
        Direction::Down => Ok(versions.filter(|v| *v > to && *v <= current).collect()),
    }
}

/// Takes the lease lock for `run_id`; a holder with an unexpired lease is a
/// conflict, one with an expired lease is marked abandoned (and returned).
async fn take_lock(app: &App, run_id: &str, now: OffsetDateTime) -> Result<Option<String>, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let now_ms = epoch_ms(now);
    let lease = Lease {
        owner: run_id.to_owned(),
        lease_expires_at_ms: now_ms + app.config.migrate.lease_seconds * 1000,
        acquired_at: rfc3339(now),
    };
    match store::acquire_lock(db, table, &lease, now_ms).await? {
        Acquire::Held(holder) => Err(AppError::Conflict(format!(
            "migration run {} holds the migration lock (lease until {}); wait for it to finish \
             (action status) or for its lease to expire",
            holder.owner,
            rfc3339_ms_or_number(holder.lease_expires_at_ms)
        ))),
        Acquire::Acquired { expired: None } => Ok(None),
        Acquire::Acquired { expired: Some(old) } => {
            tracing::warn!(run_id = %old.owner, "previous migration run lost its lease; marking it abandoned");
            let reason = Some("lease expired; replaced by another run");
            close_run(app, &old.owner, RunStatus::Abandoned, reason, false).await?;
            Ok(Some(old.owner))
        }
    }
}

/// Records the run and enqueues its segment jobs; if either fails, the run
/// is closed as failed and the lock released before the error is returned.
async fn launch(app: &App, queue: &str, run: &RunRecord) -> Result<(), AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let started = async {
        store::create_run(db, table, run).await?;
        enqueue(app, queue, &segment_jobs(run)).await
    };
    let Err(error) = started.await else { return Ok(()) };
    tracing::error!(run_id = %run.run_id, error = %error, "could not start the migration run");
    let at = rfc3339(app.now());
    let _ = store::finish_run(db, table, &run.run_id, RunStatus::Failed, &at, Some("start failed")).await;
    let _ = store::release_lock(db, table, &run.run_id).await;
    Err(error)
}

/// The first job of every segment of `run`.
fn segment_jobs(run: &RunRecord) -> Vec<Job> {
    (0..run.total_segments)
        .map(|segment| {
            Job::Segment(SegmentJob {
                run_id: run.run_id.clone(),
                direction: run.direction,
                to_version: run.to_version,
                segment,
                total_segments: run.total_segments,
                dry_run: run.dry_run,
                cursor: None,
                leg: 0,
            })
        })
        .collect()
}
