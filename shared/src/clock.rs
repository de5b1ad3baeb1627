//! Time source. Production reads the system clock; tests drive a manual clock so
//! expiry rules (tokens, lockout, idempotency) are exercised without sleeping.
//!
//! The one place timestamps are computed and formatted: epoch milliseconds,
//! RFC 3339 text (second precision, or the canonical millisecond form), the
//! SDK's date-times, and the invocation [`Deadline`].

use std::sync::Mutex;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Milliseconds since the Unix epoch (saturating).
pub fn epoch_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The instant `ms` milliseconds after the Unix epoch, if representable.
pub fn from_epoch_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The canonical text of an epoch-millisecond instant: UTC, `Z`, seconds
/// unless there are milliseconds (`...:SS.mmmZ`). `None` out of range.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let whole = from_epoch_ms(ms)?.replace_nanosecond(0).ok()?.format(&Rfc3339).ok()?;
    match ms.rem_euclid(1000) {
        0 => Some(whole),
        millis => Some(format!("{}.{millis:03}Z", whole.strip_suffix('Z')?)),
    }
}

/// [`rfc3339_ms`], falling back to the number itself out of range.
pub fn rfc3339_ms_or_number(ms: i64) -> String {
    rfc3339_ms(ms).unwrap_or_else(|| ms.to_string())
}

/// Parses RFC 3339 text (any offset).
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Milliseconds from `start` to `end`, both RFC 3339; 0 when either does not parse.
pub fn elapsed_ms(start: &str, end: &str) -> i64 {
    match (parse_rfc3339(start), parse_rfc3339(end)) {
        (Some(start), Some(end)) => i64::try_from((end - start).whole_milliseconds()).unwrap_or(0),
        _ => 0,
    }
}

/// An SDK date-time as an instant.
pub fn from_sdk(at: &aws_smithy_types::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok()
}

/// An instant as an SDK date-time.
pub fn to_sdk(at: OffsetDateTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(at.unix_timestamp_nanos())
        .unwrap_or_else(|_| aws_smithy_types::DateTime::from_secs(at.unix_timestamp()))
}

/// The invocation's deadline (epoch milliseconds, `LambdaEvent.context.deadline`);
/// 0 means unknown, and the work runs to its end. Measured against the app's
/// clock, like every other time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub u64);

impl Deadline {
    /// Milliseconds left at `clock`'s now (0 once passed); `None` when unknown.
    pub fn remaining_ms(self, clock: &dyn Clock) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        let now = u64::try_from(epoch_ms(clock.now())).unwrap_or(0);
        Some(self.0.saturating_sub(now))
    }

    /// Whether fewer than `margin_ms` are left (never, when unknown).
    pub fn within(self, clock: &dyn Clock, margin_ms: u64) -> bool {
        self.remaining_ms(clock).is_some_and(|left| left < margin_ms)
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;

/// RFC 3339 with second precision, the format of every timestamp we return.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}
