//! Versioned, resumable, parallel-segment data migrations.
//!
//! - [`definitions`]: the migrations this code ships (Rust item transforms).
//! - [`plan`]: pure planning of one item towards a target version.
//! - this module: the service behind the `migrate` function:
//!   [`status`], [`start`] (an `up`/`down` command: lease lock, run item, one
//!   job message per scan segment) and [`run_segment`] (one job message: scan
//!   page by page, conditional per-item updates, checkpoints, hand-over before
//!   the invocation's deadline, and the last segment's finalization: history
//!   entry and lock release).
//! - bookkeeping item layouts: [`crate::store::migrations`].
//!
//! Guarantees: two runs never overlap (lease lock, renewed every page; a run
//! that loses its lease stops); an item is transformed at most once per run
//! and never over a concurrent write (the update is conditional on the
//! version and on every attribute the transform reads or writes); a crash or
//! time-out resumes from `(segment, LastEvaluatedKey)`; failed items are
//! counted, and past `MIGRATE_MAX_FAILED_ITEMS` the run stops as failed
//! (roll back with `down`).

pub mod definitions;
pub mod plan;

use crate::app::App;
use crate::clock::rfc3339;
use crate::config::ConfigError;
use crate::error::AppError;
use crate::metrics::{MetricSet, Unit};
use crate::store::Item;
use crate::store::migrations::{
    self as store, Acquire, Applied, Checkpoint, Counters, FAILED_KEYS_KEPT, HistoryRecord, Lease,
    MigrationRef, RunRecord, RunStatus,
};
use futures::StreamExt;
pub use plan::{BASE_VERSION, Direction, Migration, Phase};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most segments one run may use.
pub const MAX_SEGMENTS: u32 = 1000;
/// Attempts per item when concurrent writes keep changing it.
const ITEM_ATTEMPTS: usize = 3;
/// SendMessageBatch's limit.
const SQS_BATCH: usize = 10;

/// A direct-invoke command of the `migrate` function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Command {
    Status,
    Up {
        /// Default: the latest version this code knows.
        #[serde(default)]
        to: Option<u32>,
        #[serde(default)]
        segments: Option<u32>,
        #[serde(default)]
        dry_run: bool,
    },
    Down {
        to: u32,
        #[serde(default)]
        segments: Option<u32>,
        #[serde(default)]
        dry_run: bool,
    },
}

/// A message on the jobs queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job")]
pub enum Job {
    #[serde(rename = "migrate.segment")]
    Segment(SegmentJob),
}

/// Work for one scan segment of one run. The stored checkpoint, not `cursor`,
/// decides where the scan resumes (a redelivered message carries an old one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentJob {
    pub run_id: String,
    pub direction: Direction,
    pub to_version: u32,
    pub segment: u32,
    pub total_segments: u32,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<BTreeMap<String, String>>,
    /// 0 for the first message of a segment, +1 per continuation.
    #[serde(default)]
    pub leg: u32,
}

/// The invocation's deadline (epoch milliseconds, `LambdaEvent.context.deadline`);
/// 0 means unknown, and the segment runs to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub u64);

impl Deadline {
    pub fn remaining_ms(self) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Some(u64::try_from(u128::from(self.0).saturating_sub(now)).unwrap_or(u64::MAX))
    }
}

/// What a segment invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentOutcome {
    /// The segment finished; other segments are still running.
    SegmentDone,
    /// The segment finished last and finalized the run.
    RunFinished,
    /// Out of time: a continuation message was enqueued.
    Continued,
    /// The run failed (threshold reached here or elsewhere) or was abandoned.
    Stopped,
    /// Another invocation advanced this segment's checkpoint (a duplicate delivery).
    Duplicate,
    /// The message names no run, or disagrees with the run (dropped).
    Ignored,
}

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
        Self { version: m.version, name: m.name, description: m.description, phase: m.phase, kinds: m.kinds }
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

fn registry() -> Result<&'static [Migration], AppError> {
    let migrations = definitions::all();
    plan::validate(migrations).map_err(|e| AppError::Internal(format!("migration registry: {e}")))?;
    Ok(migrations)
}

fn now_ms(app: &App) -> i64 {
    i64::try_from(app.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn ms_text(ms: i64) -> String {
    definitions::format_ms(ms).unwrap_or_else(|| ms.to_string())
}

/// The table's version: the target of the last successful, real run.
pub fn current_version(history: &[HistoryRecord]) -> u32 {
    history
        .iter()
        .rev()
        .find(|h| h.status == RunStatus::Succeeded && !h.dry_run)
        .map_or(BASE_VERSION, |h| h.to_version)
}

fn migration_refs(migrations: &[Migration], versions: &[u32]) -> Vec<MigrationRef> {
    migrations
        .iter()
        .filter(|m| versions.contains(&m.version))
        .map(|m| MigrationRef { version: m.version, name: m.name.to_owned() })
        .collect()
}

/// `{"action":"status"}`.
pub async fn status(app: &App) -> Result<StatusReport, AppError> {
    let migrations = registry()?;
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let history = store::history(db, table).await?;
    let current = current_version(&history);
    let applied = migrations
        .iter()
        .filter(|m| m.version <= current)
        .filter_map(|m| {
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
                items_changed: run
                    .counters
                    .changed_by_version
                    .get(&m.version.to_string())
                    .copied()
                    .unwrap_or(0),
                items_failed: run.counters.items_failed,
            })
        })
        .collect();
    let pending = migrations.iter().filter(|m| m.version > current).map(MigrationInfo::from).collect();
    let running = match store::read_lock(db, table).await? {
        None => None,
        Some(lease) => match store::get_run(db, table, &lease.owner).await? {
            None => None,
            Some(run) => {
                let checkpoints = store::checkpoints(db, table, &run.run_id).await?;
                let mut counters = Counters::default();
                checkpoints.iter().for_each(|c| counters.add(&c.counters));
                Some(RunProgress {
                    lease_expires_at: ms_text(lease.lease_expires_at_ms),
                    lease_expired: lease.lease_expires_at_ms < now_ms(app),
                    segments_done: u32::try_from(checkpoints.iter().filter(|c| c.done).count())
                        .unwrap_or(u32::MAX),
                    pages: checkpoints.iter().map(|c| c.pages).sum(),
                    counters,
                    run,
                })
            }
        },
    };
    Ok(StatusReport {
        current_version: current,
        latest_version: plan::latest(migrations),
        applied,
        pending,
        history,
        running,
    })
}

/// `{"action":"up"|"down", ...}`: takes the lock, records the run and
/// enqueues one job per segment. A second run while one holds the lock is a
/// [`AppError::Conflict`] naming the holder.
pub async fn start(
    app: &App,
    direction: Direction,
    to: Option<u32>,
    segments: Option<u32>,
    dry_run: bool,
) -> Result<RunStarted, AppError> {
    let migrations = registry()?;
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let settings = &app.config.migrate;
    let latest = plan::latest(migrations);
    let to = to.unwrap_or(latest);
    if !(BASE_VERSION..=latest).contains(&to) {
        return Err(AppError::bad_request("to", format!("to must be between {BASE_VERSION} and {latest}")));
    }
    let segments = segments.unwrap_or(settings.default_segments);
    if !(1..=MAX_SEGMENTS).contains(&segments) {
        return Err(AppError::bad_request(
            "segments",
            format!("segments must be between 1 and {MAX_SEGMENTS}"),
        ));
    }
    let queue = app.config.jobs_queue_url.as_deref().ok_or(ConfigError::Missing("JOBS_QUEUE_URL"))?;
    let current = current_version(&store::history(db, table).await?);
    let versions: Vec<u32> = match direction {
        Direction::Up if to < current => {
            return Err(AppError::bad_request(
                "to",
                format!("the table is at version {current}; use down to go to {to}"),
            ));
        }
        Direction::Down if to > current => {
            return Err(AppError::bad_request(
                "to",
                format!("the table is at version {current}; use up to go to {to}"),
            ));
        }
        Direction::Up => migrations.iter().map(|m| m.version).filter(|v| *v > current && *v <= to).collect(),
        Direction::Down => {
            migrations.iter().map(|m| m.version).filter(|v| *v > to && *v <= current).collect()
        }
    };

    let run_id = crate::ids::new_id();
    let now = app.now();
    let lease = Lease {
        owner: run_id.clone(),
        lease_expires_at_ms: now_ms(app) + settings.lease_seconds * 1000,
        acquired_at: rfc3339(now),
    };
    let abandoned_run = match store::acquire_lock(db, table, &lease, now_ms(app)).await? {
        Acquire::Held(holder) => {
            return Err(AppError::Conflict(format!(
                "migration run {} holds the migration lock (lease until {}); wait for it to finish \
                 (action status) or for its lease to expire",
                holder.owner,
                ms_text(holder.lease_expires_at_ms)
            )));
        }
        Acquire::Acquired { expired: None } => None,
        Acquire::Acquired { expired: Some(old) } => {
            tracing::warn!(run_id = %old.owner, "previous migration run lost its lease; marking it abandoned");
            close_run(
                app,
                &old.owner,
                RunStatus::Abandoned,
                Some("lease expired; replaced by another run"),
                false,
            )
            .await?;
            Some(old.owner)
        }
    };

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
    let started = async {
        store::create_run(db, table, &run).await?;
        let jobs: Vec<Job> = (0..segments)
            .map(|segment| {
                Job::Segment(SegmentJob {
                    run_id: run_id.clone(),
                    direction,
                    to_version: to,
                    segment,
                    total_segments: segments,
                    dry_run,
                    cursor: None,
                    leg: 0,
                })
            })
            .collect();
        enqueue(app, queue, &jobs).await
    };
    if let Err(error) = started.await {
        tracing::error!(run_id = %run_id, error = %error, "could not start the migration run");
        let _ = store::finish_run(
            db,
            table,
            &run_id,
            RunStatus::Failed,
            &rfc3339(app.now()),
            Some("start failed"),
        )
        .await;
        let _ = store::release_lock(db, table, &run_id).await;
        return Err(error);
    }
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

/// Sends jobs to the jobs queue, ten per request; any entry the queue
/// refuses fails the call (callers retry the whole step; jobs are idempotent).
pub async fn enqueue(app: &App, queue_url: &str, jobs: &[Job]) -> Result<(), AppError> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    for chunk in jobs.chunks(SQS_BATCH) {
        let mut entries = Vec::with_capacity(chunk.len());
        for (index, job) in chunk.iter().enumerate() {
            let body = serde_json::to_string(job).map_err(|e| AppError::internal("encode job", e))?;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| AppError::internal("build job message", e))?,
            );
        }
        let output = app
            .clients
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enqueue jobs", e))?;
        if !output.failed().is_empty() {
            let codes: Vec<&str> = output.failed().iter().map(|f| f.code()).collect();
            return Err(AppError::Unavailable(format!(
                "the jobs queue refused messages: {}",
                codes.join(", ")
            )));
        }
    }
    Ok(())
}

fn kinds_of_run(migrations: &[Migration], run: &RunRecord) -> Vec<&'static str> {
    match run.direction {
        // Every migration up to the target: stragglers below the table's
        // version are brought forward too.
        Direction::Up => plan::kinds_between(migrations, BASE_VERSION, run.to_version),
        Direction::Down => plan::kinds_between(migrations, run.to_version, plan::latest(migrations)),
    }
}

/// One job message: works on one segment until it is done, the run stops,
/// or the deadline is near (then enqueues its continuation).
pub async fn run_segment(
    app: &App,
    job: &SegmentJob,
    deadline: Deadline,
) -> Result<SegmentOutcome, AppError> {
    let migrations = registry()?;
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let settings = &app.config.migrate;
    let Some(run) = store::get_run(db, table, &job.run_id).await? else {
        tracing::warn!(run_id = %job.run_id, "job for an unknown migration run; dropped");
        return Ok(SegmentOutcome::Ignored);
    };
    if job.direction != run.direction
        || job.to_version != run.to_version
        || job.total_segments != run.total_segments
        || job.segment >= run.total_segments
        || job.dry_run != run.dry_run
    {
        tracing::error!(run_id = %run.run_id, segment = job.segment, "job disagrees with its run; dropped");
        return Ok(SegmentOutcome::Ignored);
    }
    if run.status != RunStatus::Running {
        return Ok(SegmentOutcome::Stopped);
    }
    let kinds = kinds_of_run(migrations, &run);
    let stored = store::get_checkpoint(db, table, &run.run_id, job.segment).await?;
    let mut previous_pages = stored.as_ref().map(|c| c.pages);
    let mut checkpoint = stored.unwrap_or_else(|| Checkpoint::new(&run.run_id, job.segment));
    if checkpoint.done {
        return finish_segment(app, &run, job.segment).await;
    }
    let mut pages_here: u32 = 0;
    loop {
        // Another segment may have failed the run; then stop before touching the lock.
        match store::get_run(db, table, &run.run_id).await? {
            Some(current) if current.status == RunStatus::Running => {}
            _ => return Ok(SegmentOutcome::Stopped),
        }
        let lease_until = now_ms(app) + settings.lease_seconds * 1000;
        if !store::renew_lock(db, table, &run.run_id, lease_until).await? {
            tracing::error!(run_id = %run.run_id, segment = job.segment, "migration lease lost; segment stops");
            close_run(app, &run.run_id, RunStatus::Abandoned, Some("lease lost to another run"), false)
                .await?;
            return Ok(SegmentOutcome::Stopped);
        }
        let page = store::scan_page(
            db,
            table,
            job.segment,
            run.total_segments,
            checkpoint.cursor.as_ref(),
            settings.page_size,
            &kinds,
        )
        .await?;
        let (counters, failures) = migrate_page(app, migrations, &run, page.items).await?;
        pages_here += 1;
        if settings.fail_after_pages.is_some_and(|k| pages_here >= k) {
            return Err(AppError::Internal(format!(
                "simulated crash after {pages_here} page(s) (MIGRATE_FAIL_AFTER_PAGES)"
            )));
        }
        checkpoint.counters.add(&counters);
        for (key, reason) in failures {
            if checkpoint.failed_keys.len() < FAILED_KEYS_KEPT {
                checkpoint.failed_keys.push(key);
                checkpoint.failed_reasons.push(reason);
            }
        }
        checkpoint.cursor = page.cursor;
        checkpoint.pages += 1;
        checkpoint.done = checkpoint.cursor.is_none();
        if !store::save_checkpoint(db, table, &checkpoint, previous_pages).await? {
            tracing::warn!(run_id = %run.run_id, segment = job.segment, "checkpoint moved under us: duplicate delivery; stopping");
            return Ok(SegmentOutcome::Duplicate);
        }
        previous_pages = Some(checkpoint.pages);
        if counters.items_failed > 0 {
            let total = store::add_failed(db, table, &run.run_id, counters.items_failed).await?;
            if total > settings.max_failed_items {
                let reason = format!("{total} items failed (threshold {})", settings.max_failed_items);
                tracing::error!(run_id = %run.run_id, failed = total, "migration run failed: too many failed items");
                close_run(app, &run.run_id, RunStatus::Failed, Some(&reason), true).await?;
                return Ok(SegmentOutcome::Stopped);
            }
        }
        if checkpoint.done {
            return finish_segment(app, &run, job.segment).await;
        }
        if deadline.remaining_ms().is_some_and(|left| left < settings.deadline_margin_ms) {
            let queue = app.config.jobs_queue_url.as_deref().ok_or(ConfigError::Missing("JOBS_QUEUE_URL"))?;
            let next = SegmentJob { cursor: checkpoint.cursor.clone(), leg: job.leg + 1, ..job.clone() };
            enqueue(app, queue, &[Job::Segment(next)]).await?;
            tracing::info!(run_id = %run.run_id, segment = job.segment, pages = checkpoint.pages, "handing over before the deadline");
            return Ok(SegmentOutcome::Continued);
        }
    }
}

enum ItemResult {
    Changed(Vec<u32>),
    Current,
    Failed(String, String),
}

async fn migrate_page(
    app: &App,
    migrations: &'static [Migration],
    run: &RunRecord,
    items: Vec<Item>,
) -> Result<(Counters, Vec<(String, String)>), AppError> {
    let mut counters = Counters { items_scanned: items.len() as u64, ..Counters::default() };
    let mut failures = Vec::new();
    let results: Vec<Result<ItemResult, AppError>> = futures::stream::iter(items)
        .map(|item| migrate_item(app, migrations, run, item))
        .buffer_unordered(app.config.migrate.item_concurrency)
        .collect()
        .await;
    for result in results {
        match result? {
            ItemResult::Changed(versions) => {
                counters.items_changed += 1;
                for version in versions {
                    *counters.changed_by_version.entry(version.to_string()).or_default() += 1;
                }
            }
            ItemResult::Current => counters.items_current += 1,
            ItemResult::Failed(key, reason) => {
                counters.items_failed += 1;
                failures.push((key, reason));
            }
        }
    }
    Ok((counters, failures))
}

async fn migrate_item(
    app: &App,
    migrations: &'static [Migration],
    run: &RunRecord,
    item: Item,
) -> Result<ItemResult, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let (key, pk) = store::item_key(&item)?;
    let mut current = item;
    for _ in 0..ITEM_ATTEMPTS {
        let plan = match plan::plan_item(migrations, run.direction, run.to_version, &current) {
            Ok(Some(plan)) => plan,
            Ok(None) => return Ok(ItemResult::Current),
            Err(error) => {
                // The key is kept in the run's report, not logged (it may hold an email).
                tracing::warn!(run_id = %run.run_id, error = %error, "item cannot be migrated");
                return Ok(ItemResult::Failed(pk, error.to_string()));
            }
        };
        if run.dry_run {
            return Ok(ItemResult::Changed(plan.applied));
        }
        match store::apply_plan(db, table, &current, &plan).await? {
            Applied::Written => return Ok(ItemResult::Changed(plan.applied)),
            Applied::Conflict => match store::read_item(db, table, key.clone()).await? {
                Some(fresh) => current = fresh,
                None => return Ok(ItemResult::Current),
            },
        }
    }
    Ok(ItemResult::Failed(pk, "the item kept changing during the migration".into()))
}

async fn finish_segment(app: &App, run: &RunRecord, segment: u32) -> Result<SegmentOutcome, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let done = store::mark_segment_done(db, table, &run.run_id, segment).await?;
    if (done as u64) < u64::from(run.total_segments) {
        return Ok(SegmentOutcome::SegmentDone);
    }
    close_run(app, &run.run_id, RunStatus::Succeeded, None, true).await?;
    Ok(SegmentOutcome::RunFinished)
}

/// Moves the run to its final `status` (if still running), then records the
/// history entry and, when we own it, releases the lock. Every step is
/// idempotent, so a redelivered message can finish what a crash interrupted.
async fn close_run(
    app: &App,
    run_id: &str,
    status: RunStatus,
    failure: Option<&str>,
    release: bool,
) -> Result<(), AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let now = app.now();
    store::finish_run(db, table, run_id, status, &rfc3339(now), failure).await?;
    let Some(run) = store::get_run(db, table, run_id).await? else { return Ok(()) };
    if run.status == RunStatus::Running {
        return Ok(());
    }
    let migrations = registry()?;
    let mut counters = Counters::default();
    for checkpoint in store::checkpoints(db, table, run_id).await? {
        counters.add(&checkpoint.counters);
    }
    let finished_at = run.finished_at.clone().unwrap_or_else(|| rfc3339(now));
    let duration_ms = match (
        time::OffsetDateTime::parse(&run.started_at, &time::format_description::well_known::Rfc3339),
        time::OffsetDateTime::parse(&finished_at, &time::format_description::well_known::Rfc3339),
    ) {
        (Ok(start), Ok(end)) => i64::try_from((end - start).whole_milliseconds()).unwrap_or(0),
        _ => 0,
    };
    let record = HistoryRecord {
        run_id: run.run_id.clone(),
        direction: run.direction,
        from_version: run.from_version,
        to_version: run.to_version,
        migrations: migration_refs(migrations, &run.versions),
        dry_run: run.dry_run,
        status: run.status,
        started_at: run.started_at.clone(),
        finished_at,
        duration_ms,
        segments: run.total_segments,
        counters: counters.clone(),
        failure: run.failure.clone(),
    };
    store::put_history(db, table, &record).await?;
    if release && run.status != RunStatus::Abandoned {
        store::release_lock(db, table, run_id).await?;
    }
    tracing::info!(
        run_id,
        status = run.status.as_str(),
        changed = counters.items_changed,
        failed = counters.items_failed,
        "migration run finished"
    );
    let outcome = match run.status {
        RunStatus::Succeeded => "MigrationRunsSucceeded",
        _ => "MigrationRunsFailed",
    };
    MetricSet::service("migrate")
        .count(outcome, 1)
        .count("MigrationItemsChanged", counters.items_changed)
        .count("MigrationItemsFailed", counters.items_failed)
        .metric("MigrationRunDuration", duration_ms as f64, Unit::Milliseconds)
        .property("run_id", run_id)
        .property("status", run.status.as_str())
        .property("dry_run", run.dry_run)
        .emit(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let up: Command =
            serde_json::from_str(r#"{"action":"up","to":3,"segments":4,"dry_run":true}"#).unwrap();
        assert_eq!(up, Command::Up { to: Some(3), segments: Some(4), dry_run: true });
        let status: Command = serde_json::from_str(r#"{"action":"status"}"#).unwrap();
        assert_eq!(status, Command::Status);
        assert!(serde_json::from_str::<Command>(r#"{"action":"down"}"#).is_err(), "down needs a target");
        assert!(serde_json::from_str::<Command>(r#"{"action":"sideways"}"#).is_err());
    }

    #[test]
    fn jobs_round_trip() {
        let job = Job::Segment(SegmentJob {
            run_id: "r".into(),
            direction: Direction::Down,
            to_version: 1,
            segment: 2,
            total_segments: 4,
            dry_run: false,
            cursor: Some(BTreeMap::from([("pk".into(), "T#a#B".into()), ("sk".into(), "C".into())])),
            leg: 3,
        });
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains(r#""job":"migrate.segment""#), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }

    #[test]
    fn current_version_is_the_last_successful_real_run() {
        let entry = |to, status, dry_run| HistoryRecord {
            run_id: "r".into(),
            direction: Direction::Up,
            from_version: 1,
            to_version: to,
            migrations: vec![],
            dry_run,
            status,
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
            segments: 1,
            counters: Counters::default(),
            failure: None,
        };
        assert_eq!(current_version(&[]), BASE_VERSION);
        let history = [
            entry(3, RunStatus::Succeeded, false),
            entry(4, RunStatus::Failed, false),
            entry(4, RunStatus::Succeeded, true),
        ];
        assert_eq!(current_version(&history), 3);
    }

    #[test]
    fn unknown_deadline_never_runs_out() {
        assert_eq!(Deadline(0).remaining_ms(), None);
        assert_eq!(Deadline(1).remaining_ms(), Some(0));
    }
}
