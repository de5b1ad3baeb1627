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
//! Files by concern: [`retention`] (pure naming and pruning rules), `run`
//! (the daily run), `pitr`, `backups` (on-demand backups), `restore`
//! (restores and their tables), `settings` (what a restore drops), `verify`
//! (checks of a restored table), `drill`, `switch` (the switch-over steps).
//!
//! Metrics (EMF, namespace `CAAS`, dimension `Service=backup`): BackupsCreated,
//! BackupsPruned, BackupFailures, PitrLagSeconds, PitrWasDisabled,
//! DrillRestoreSeconds, DrillFailures. template.yaml alarms on DrillFailures,
//! PitrWasDisabled and a missing BackupsCreated.

mod backups;
mod drill;
mod pitr;
mod restore;
pub mod retention;
mod run;
mod settings;
mod switch;
mod verify;

use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::AppError;
pub use backups::list_backups;
pub use drill::{DrillReport, drill};
pub use pitr::{PitrState, ensure_pitr};
pub use restore::{RestoreReport, RestoreSource, restore};
pub use run::{RunSummary, TableRun, run};
use serde::Deserialize;
pub use settings::reapply_settings;
pub use switch::switch_steps;
use time::OffsetDateTime;
pub use verify::{Check, verify_restored};

const SERVICE: &str = "backup";

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
        parse_rfc3339(text).map(Self::At).ok_or_else(|| {
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
}
