//! Identifiers. UUIDv7 everywhere: unique, and time-ordered so sort keys built
//! from them list newest or oldest first without another attribute.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new id whose time is `at` (to the millisecond) rather than the system
/// clock's: ledger transactions take the time of the change they record, so
/// their entries can be listed by time with a key range ([`time_floor`]).
/// Ids made in one process at the same millisecond still sort in the order
/// they were made: a process-wide 42-bit counter (seeded at random) fills the
/// bits after the timestamp, 32 random bits the rest (UUIDv7 layout).
pub fn new_id_at(at: time::OffsetDateTime) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let counter = COUNTER.get_or_init(|| AtomicU64::new(rand::random::<u64>() >> 23));
    let count = u128::from(counter.fetch_add(1, Ordering::Relaxed) & ((1 << 42) - 1));
    let ms = u128::from(u64::try_from(crate::clock::epoch_ms(at)).unwrap_or(0) & 0xffff_ffff_ffff);
    let random = u128::from(rand::random::<u32>());
    let value = (ms << 80)
        | (0x7 << 76)
        | ((count >> 30) << 64)
        | (0b10 << 62)
        | ((count & 0x3fff_ffff) << 32)
        | random;
    uuid::Uuid::from_u128(value).to_string()
}

/// The least id text of any id made at `at` or later: UUIDv7 text starts
/// with the millisecond timestamp in hex, so ids compare as their times.
pub fn time_floor(at: time::OffsetDateTime) -> String {
    let ms = u64::try_from(crate::clock::epoch_ms(at)).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{:08x}-{:04x}-0000-0000-000000000000", ms >> 16, ms & 0xffff)
}

/// The millisecond an id (UUIDv7) was made at.
pub fn time_of(id: &str) -> Option<i64> {
    let hex = format!("{}{}", id.get(0..8)?, id.get(9..13)?);
    i64::from_str_radix(&hex, 16).ok()
}

/// True for the canonical hyphenated lowercase form we hand out.
pub fn is_valid_id(value: &str) -> bool {
    value.len() == 36 && uuid::Uuid::try_parse(value).is_ok_and(|id| id.hyphenated().to_string() == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_at_a_time_sort_between_its_floors() {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_564_800_123_000_000).unwrap();
        let id = new_id_at(at);
        assert!(is_valid_id(&id));
        assert_eq!(time_of(&id), Some(1_795_564_800_123));
        assert!(time_floor(at) < id && id < time_floor(at + time::Duration::milliseconds(1)));
        assert!(time_floor(at - time::Duration::days(400)) < time_floor(at));
        let (first, second) = (new_id_at(at), new_id_at(at));
        assert!(first < second && time_of(&second) == time_of(&first), "same millisecond, in order");
        assert_eq!(uuid::Uuid::parse_str(&first).unwrap().get_version_num(), 7);
    }
}
