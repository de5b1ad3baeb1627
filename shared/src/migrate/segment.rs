//! One segment job: scan the segment page by page, migrate each page's
//! items, checkpoint `(segment, LastEvaluatedKey)` after every page, and hand
//! over to a continuation message before the invocation's deadline.

use super::finish::{close_run, finish_segment};
use super::items::migrate_page;
use super::queue::{enqueue, jobs_queue};
use super::{BASE_VERSION, Direction, Job, Migration, SegmentJob, SegmentOutcome, plan, registry};
use crate::app::App;
use crate::clock::{Deadline, epoch_ms};
use crate::error::AppError;
use crate::store::migrations::{self as store, Checkpoint, Counters, FAILED_KEYS_KEPT, RunRecord, RunStatus};

/// One job message: works on one segment until it is done, the run stops,
/// or the deadline is near (then enqueues its continuation).
pub async fn run_segment(
    app: &App,
    job: &SegmentJob,
    deadline: Deadline,
) -> Result<SegmentOutcome, AppError> {
    let migrations = registry()?;
    let run = match running_run(app, job).await? {
        Ok(run) => run,
        Err(outcome) => return Ok(outcome),
    };
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let stored = store::get_checkpoint(db, table, &run.run_id, job.segment).await?;
    let mut segment = Segment {
        app,
        migrations,
        job,
        kinds: kinds_of_run(migrations, &run),
        previous_pages: stored.as_ref().map(|c| c.pages),
        checkpoint: stored.unwrap_or_else(|| Checkpoint::new(&run.run_id, job.segment)),
        pages_here: 0,
        run,
    };
    if segment.checkpoint.done {
        return finish_segment(app, &segment.run, job.segment).await;
    }
    loop {
        if let Some(outcome) = segment.next_page().await? {
            return Ok(outcome);
        }
        if deadline.within(app.clock.as_ref(), app.config.migrate.deadline_margin_ms) {
            return segment.hand_over().await;
        }
    }
}

/// The run of `job`, or why the job is not worked on: no such run, a job
/// that disagrees with its run (dropped), or a run that is no longer running.
async fn running_run(app: &App, job: &SegmentJob) -> Result<Result<RunRecord, SegmentOutcome>, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let Some(run) = store::get_run(db, table, &job.run_id).await? else {
        tracing::warn!(run_id = %job.run_id, "job for an unknown migration run; dropped");
        return Ok(Err(SegmentOutcome::Ignored));
    };
    if job.direction != run.direction
        || job.to_version != run.to_version
        || job.total_segments != run.total_segments
        || job.segment >= run.total_segments
        || job.dry_run != run.dry_run
    {
        tracing::error!(run_id = %run.run_id, segment = job.segment, "job disagrees with its run; dropped");
        return Ok(Err(SegmentOutcome::Ignored));
    }
    if run.status != RunStatus::Running {
        return Ok(Err(SegmentOutcome::Stopped));
    }
    Ok(Ok(run))
}

/// The item kinds a run scans for.
fn kinds_of_run(migrations: &[Migration], run: &RunRecord) -> Vec<&'static str> {
    match run.direction {
        // Every migration up to the target: stragglers below the table's
        // version are brought forward too.
        Direction::Up => plan::kinds_between(migrations, BASE_VERSION, run.to_version),
        Direction::Down => plan::kinds_between(migrations, run.to_version, plan::latest(migrations)),
    }
}

/// A segment being worked on in this invocation.
struct Segment<'a> {
    app: &'a App,
    migrations: &'static [Migration],
    job: &'a SegmentJob,
    run: RunRecord,
    kinds: Vec<&'static str>,
    checkpoint: Checkpoint,
    /// The checkpoint's `pages` as last read or written (its optimistic version).
    previous_pages: Option<u64>,
    pages_here: u32,
}

impl Segment<'_> {
    /// One page: checks the run is still running and renews the lease, scans,
    /// migrates, checkpoints and counts failures. `Some` when the segment
    /// job ends here.
    async fn next_page(&mut self) -> Result<Option<SegmentOutcome>, AppError> {
        let app = self.app;
        let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
        let settings = &app.config.migrate;
        if let Some(outcome) = self.still_running().await? {
            return Ok(Some(outcome));
        }
        let page = store::scan_page(
            db,
            table,
            self.job.segment,
            self.run.total_segments,
            self.checkpoint.cursor.as_ref(),
            settings.page_size,
            &self.kinds,
        )
        .await?;
        let (counters, failures) = migrate_page(app, self.migrations, &self.run, page.items).await?;
        self.pages_here += 1;
        if settings.fail_after_pages.is_some_and(|k| self.pages_here >= k) {
            return Err(AppError::Internal(format!(
                "simulated crash after {} page(s) (MIGRATE_FAIL_AFTER_PAGES)",
                self.pages_here
            )));
        }
        self.record(&counters, failures, page.cursor);
        if !store::save_checkpoint(db, table, &self.checkpoint, self.previous_pages).await? {
            tracing::warn!(run_id = %self.run.run_id, segment = self.job.segment, "checkpoint moved under us: duplicate delivery; stopping");
            return Ok(Some(SegmentOutcome::Duplicate));
        }
        self.previous_pages = Some(self.checkpoint.pages);
        if counters.items_failed > 0 && self.over_threshold(counters.items_failed).await? {
            return Ok(Some(SegmentOutcome::Stopped));
        }
        if self.checkpoint.done {
            return finish_segment(app, &self.run, self.job.segment).await.map(Some);
        }
        Ok(None)
    }

    /// Stops when another segment failed the run (before touching the lock),
    /// and when the lease was lost to another run.
    async fn still_running(&self) -> Result<Option<SegmentOutcome>, AppError> {
        let app = self.app;
        let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
        let run_id = self.run.run_id.as_str();
        match store::get_run(db, table, run_id).await? {
            Some(current) if current.status == RunStatus::Running => {}
            _ => return Ok(Some(SegmentOutcome::Stopped)),
        }
        let lease_until = epoch_ms(app.now()) + app.config.migrate.lease_seconds * 1000;
        if store::renew_lock(db, table, run_id, lease_until).await? {
            return Ok(None);
        }
        tracing::error!(run_id, segment = self.job.segment, "migration lease lost; segment stops");
        close_run(app, run_id, RunStatus::Abandoned, Some("lease lost to another run"), false).await?;
        Ok(Some(SegmentOutcome::Stopped))
    }

    /// Adds a page's counts, first failures and cursor to the checkpoint.
    fn record(
        &mut self,
        counters: &Counters,
        failures: Vec<(String, String)>,
        cursor: Option<std::collections::BTreeMap<String, String>>,
    ) {
        let checkpoint = &mut self.checkpoint;
        checkpoint.counters.add(counters);
        for (key, reason) in failures {
            if checkpoint.failed_keys.len() < FAILED_KEYS_KEPT {
                checkpoint.failed_keys.push(key);
                checkpoint.failed_reasons.push(reason);
            }
        }
        checkpoint.cursor = cursor;
        checkpoint.pages += 1;
        checkpoint.done = checkpoint.cursor.is_none();
    }

    /// Adds `failed` to the run's total; past the threshold the run fails.
    async fn over_threshold(&self, failed: u64) -> Result<bool, AppError> {
        let app = self.app;
        let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
        let run_id = self.run.run_id.as_str();
        let max = app.config.migrate.max_failed_items;
        let total = store::add_failed(db, table, run_id, failed).await?;
        if total <= max {
            return Ok(false);
        }
        let reason = format!("{total} items failed (threshold {max})");
        tracing::error!(run_id, failed = total, "migration run failed: too many failed items");
        close_run(app, run_id, RunStatus::Failed, Some(&reason), true).await?;
        Ok(true)
    }

    /// Enqueues the continuation of this segment from its checkpoint.
    async fn hand_over(&self) -> Result<SegmentOutcome, AppError> {
        let queue = jobs_queue(self.app)?;
        let next =
            SegmentJob { cursor: self.checkpoint.cursor.clone(), leg: self.job.leg + 1, ..self.job.clone() };
        enqueue(self.app, queue, &[Job::Segment(next)]).await?;
        tracing::info!(run_id = %self.run.run_id, segment = self.job.segment, pages = self.checkpoint.pages, "handing over before the deadline");
        Ok(SegmentOutcome::Continued)
    }
}
