//! Versioned, resumable, parallel-segment data migrations.
//!
//! - [`definitions`]: the migrations this code ships, each naming a layout
//!   change of the store ([`crate::store::user_layouts`],
//!   [`crate::store::account_layouts`]); a change may also name companion
//!   items its new layout needs beside the item (created if absent, before
//!   the item's own update, and never removed by `down`).
//! - [`plan`]: pure planning of one item towards a target version.
//! - the service behind the `migrate` function: [`status`]; [`start`] (an
//!   `up`/`down` command: lease lock, run item, one job message per scan
//!   segment); [`run_segment`] (one job message: scan page by page,
//!   conditional per-item updates, checkpoints, hand-over before the
//!   invocation's deadline) and the last segment's finalization (history
//!   entry and lock release).
//! - bookkeeping item layouts and the per-item conditional write:
//!   [`crate::store::migrations`].
//!
//! Guarantees: two runs never overlap (lease lock, renewed every page; a run
//! that loses its lease stops); an item is transformed at most once per run
//! and never over a concurrent write (the update is conditional on the
//! version and on every attribute the transform reads or writes); a crash or
//! time-out resumes from `(segment, LastEvaluatedKey)`; failed items are
//! counted, and past `MIGRATE_MAX_FAILED_ITEMS` the run stops as failed
//! (roll back with `down`).

pub mod definitions;
mod finish;
mod items;
mod messages;
pub mod plan;
mod queue;
mod segment;
mod start;
mod status;

use crate::error::AppError;
use crate::store::migrations::{HistoryRecord, MigrationRef, RunStatus};
use finish::close_run;
pub use messages::{Command, Job, SegmentJob, SegmentOutcome};
pub use plan::{BASE_VERSION, Direction, Migration, Phase};
pub use queue::enqueue;
pub use segment::run_segment;
pub use start::{RunStarted, start};
pub use status::{AppliedMigration, MigrationInfo, RunProgress, StatusReport, status};

/// Most segments one run may use.
pub const MAX_SEGMENTS: u32 = 1000;

fn registry() -> Result<&'static [Migration], AppError> {
    let migrations = definitions::all();
    plan::validate(migrations).map_err(|e| AppError::Internal(format!("migration registry: {e}")))?;
    Ok(migrations)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations::Counters;

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
}
