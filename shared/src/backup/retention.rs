//! Pure rules of the backup job: backup and scratch-table names, which
//! on-demand backups retention deletes, and the drill's item-count window.

use time::OffsetDateTime;
use time::macros::format_description;

/// DynamoDB's limit on backup and table names.
pub const MAX_NAME: usize = 255;

/// An on-demand backup as the retention rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEntry {
    pub arn: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    /// Only `AVAILABLE` backups are kept or deleted; others are ignored.
    pub available: bool,
}

/// `20260115T030000Z`.
pub fn compact_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.format(format_description!("[year][month][day]T[hour][minute][second]Z"))
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// `<table>-<UTC timestamp>`, the table part shortened if the whole would
/// exceed DynamoDB's limit.
pub fn backup_name(table: &str, at: OffsetDateTime) -> String {
    let stamp = compact_utc(at);
    let room = MAX_NAME - stamp.len() - 1;
    let table: String = table.chars().take(room).collect();
    format!("{table}-{stamp}")
}

/// The prefix every drill scratch table of `table` starts with (IAM scopes
/// the backup function's restore and delete rights to it).
pub fn drill_prefix(table: &str) -> String {
    format!("{table}-drill-")
}

/// The prefix every restore target of `table` must start with.
pub fn restore_prefix(table: &str) -> String {
    format!("{table}-restore-")
}

/// A valid DynamoDB table name: 3 to 255 of `[A-Za-z0-9_.-]`.
pub fn valid_table_name(name: &str) -> bool {
    (3..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The backups to delete: available backups older than `retention_days`,
/// except the `keep_newest` newest available ones, whatever their age.
/// Ties in creation time are broken by name so the answer is deterministic.
pub fn to_prune(
    backups: &[BackupEntry],
    now: OffsetDateTime,
    retention_days: u32,
    keep_newest: u32,
) -> Vec<BackupEntry> {
    let cutoff = now - time::Duration::days(i64::from(retention_days));
    let mut available: Vec<&BackupEntry> = backups.iter().filter(|b| b.available).collect();
    available.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name)));
    available
        .into_iter()
        .skip(usize::try_from(keep_newest).unwrap_or(usize::MAX))
        .filter(|b| b.created_at < cutoff)
        .cloned()
        .collect()
}

/// Whether a restored table's item count is within `tolerance_percent` of
/// what was expected (rounded outwards, so a small table is not failed by a
/// single concurrent write when a tolerance is set).
pub fn count_within_window(expected: u64, actual: u64, tolerance_percent: u32) -> bool {
    let slack = (u128::from(expected) * u128::from(tolerance_percent)).div_ceil(100);
    let slack = u64::try_from(slack).unwrap_or(u64::MAX);
    actual >= expected.saturating_sub(slack) && actual <= expected.saturating_add(slack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64, now: OffsetDateTime) -> OffsetDateTime {
        now - time::Duration::days(days_ago)
    }

    fn entry(name: &str, created_at: OffsetDateTime) -> BackupEntry {
        BackupEntry { arn: format!("arn:{name}"), name: name.into(), created_at, available: true }
    }

    #[test]
    fn names() {
        let now = OffsetDateTime::from_unix_timestamp(1_768_446_000).unwrap();
        assert_eq!(backup_name("caas-Table-1", now), "caas-Table-1-20260115T030000Z");
        let long = "t".repeat(300);
        let name = backup_name(&long, now);
        assert_eq!(name.len(), MAX_NAME);
        assert!(name.ends_with("-20260115T030000Z"));
        assert!(valid_table_name("caas-Table-1-restore-x"));
        assert!(!valid_table_name("no spaces"));
        assert!(!valid_table_name("ab"));
    }

    #[test]
    fn prunes_only_old_backups_beyond_the_newest_n() {
        let now = OffsetDateTime::from_unix_timestamp(1_768_446_000).unwrap();
        // Ten daily backups, 0..=9 days old, plus two very old ones.
        let mut backups: Vec<BackupEntry> = (0..10).map(|d| entry(&format!("d{d}"), at(d, now))).collect();
        backups.push(entry("old1", at(40, now)));
        backups.push(entry("old2", at(41, now)));
        // Retention 5 days, keep 7: days 7, 8, 9 and the old ones go.
        let pruned: Vec<String> = to_prune(&backups, now, 5, 7).into_iter().map(|b| b.name).collect();
        assert_eq!(pruned, vec!["d7", "d8", "d9", "old1", "old2"]);
        // Keep-newest wins over age: with keep 20 nothing goes.
        assert!(to_prune(&backups, now, 5, 20).is_empty());
        // Long retention: only what is older than it, newest N still kept.
        let pruned: Vec<String> = to_prune(&backups, now, 30, 3).into_iter().map(|b| b.name).collect();
        assert_eq!(pruned, vec!["old1", "old2"]);
    }

    #[test]
    fn never_counts_or_deletes_unavailable_backups_and_is_stable_on_ties() {
        let now = OffsetDateTime::from_unix_timestamp(1_768_446_000).unwrap();
        let old = at(100, now);
        let mut creating = entry("creating", old);
        creating.available = false;
        let backups = vec![creating, entry("a", old), entry("b", old), entry("c", old)];
        let pruned: Vec<String> = to_prune(&backups, now, 1, 1).into_iter().map(|b| b.name).collect();
        assert_eq!(pruned, vec!["b", "a"], "c is kept as the newest by name; the unavailable one is ignored");
    }

    #[test]
    fn count_window() {
        assert!(count_within_window(1000, 1000, 0));
        assert!(!count_within_window(1000, 999, 0));
        assert!(count_within_window(1000, 950, 5));
        assert!(!count_within_window(1000, 949, 5));
        assert!(count_within_window(1000, 1050, 5));
        assert!(count_within_window(10, 11, 5), "slack rounds up to one item");
        assert!(!count_within_window(10, 0, 5));
        assert!(count_within_window(0, 0, 5));
        assert!(!count_within_window(0, 1, 5));
    }
}
