//! The end of a segment and of a run: the last segment to finish closes the
//! run, which writes its history entry and releases the lock.

use super::{SegmentOutcome, migration_refs, registry};
use crate::app::App;
use crate::clock::{elapsed_ms, rfc3339};
use crate::error::AppError;
use crate::metrics::{MetricSet, Unit};
use crate::store::migrations::{self as store, Counters, HistoryRecord, RunRecord, RunStatus};
use time::OffsetDateTime;

/// Marks `segment` done; the last one closes the run as succeeded.
pub(super) async fn finish_segment(
    app: &App,
    run: &RunRecord,
    segment: u32,
) -> Result<SegmentOutcome, AppError> {
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
pub(super) async fn close_run(
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
    let mut counters = Counters::default();
    for checkpoint in store::checkpoints(db, table, run_id).await? {
        counters.add(&checkpoint.counters);
    }
    let record = history_record(&run, counters, now)?;
    store::put_history(db, table, &record).await?;
    if release && run.status != RunStatus::Abandoned {
        store::release_lock(db, table, run_id).await?;
    }
    tracing::info!(
        run_id,
        status = run.status.as_str(),
        changed = record.counters.items_changed,
        failed = record.counters.items_failed,
        "migration run finished"
    );
    emit_run_metrics(&record, now);
    Ok(())
}

/// The history entry of a closed run.
fn history_record(
    run: &RunRecord,
    counters: Counters,
    now: OffsetDateTime,
) -> Result<HistoryRecord, AppError> {
    let finished_at = run.finished_at.clone().unwrap_or_else(|| rfc3339(now));
    Ok(HistoryRecord {
        run_id: run.run_id.clone(),
        direction: run.direction,
        from_version: run.from_version,
        to_version: run.to_version,
        migrations: migration_refs(registry()?, &run.versions),
        dry_run: run.dry_run,
        status: run.status,
        started_at: run.started_at.clone(),
        duration_ms: elapsed_ms(&run.started_at, &finished_at),
        finished_at,
        segments: run.total_segments,
        counters,
        failure: run.failure.clone(),
    })
}

fn emit_run_metrics(record: &HistoryRecord, now: OffsetDateTime) {
    let outcome = match record.status {
        RunStatus::Succeeded => "MigrationRunsSucceeded",
        _ => "MigrationRunsFailed",
    };
    MetricSet::service("migrate")
        .count(outcome, 1)
        .count("MigrationItemsChanged", record.counters.items_changed)
        .count("MigrationItemsFailed", record.counters.items_failed)
        .metric("MigrationRunDuration", record.duration_ms as f64, Unit::Milliseconds)
        .property("run_id", record.run_id.as_str())
        .property("status", record.status.as_str())
        .property("dry_run", record.dry_run)
        .emit(now);
}
