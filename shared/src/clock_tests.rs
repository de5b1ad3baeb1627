//! Unit tests of [`super`] (the clock helpers and the deadline).

use super::*;

#[test]
fn canonical_millisecond_text() {
    assert_eq!(rfc3339_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(rfc3339_ms(1_700_000_000_123).as_deref(), Some("2023-11-14T22:13:20.123Z"));
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    assert_eq!(rfc3339_ms(1_800_000_000_000), Some(rfc3339(at)));
    assert_eq!(epoch_ms(at), 1_800_000_000_000);
    assert_eq!(from_epoch_ms(1_800_000_000_000), Some(at));
    assert_eq!(elapsed_ms("2026-01-01T00:00:00Z", "2026-01-01T00:00:01.5Z"), 1500);
    assert_eq!(elapsed_ms("x", "2026-01-01T00:00:00Z"), 0);
}

#[test]
fn unknown_deadline_never_runs_out() {
    let clock = SystemClock;
    assert_eq!(Deadline(0).remaining_ms(&clock), None);
    assert_eq!(Deadline(1).remaining_ms(&clock), Some(0));
    let manual = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_000).unwrap());
    assert_eq!(Deadline(1_000_250).remaining_ms(&manual), Some(250));
    assert!(Deadline(1_000_250).within(&manual, 251));
    assert!(!Deadline(0).within(&manual, u64::MAX));
}
