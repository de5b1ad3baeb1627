//! The migrations this code ships, in order. Each is a pair of pure item
//! transforms with `down(up(x)) == x` (checked by the unit tests below and by
//! the emulator tests over ten thousand items).
//!
//! User items, expand → backfill → contract of the creation time:
//! - v2 `users-created-at-ms` (expand + backfill): adds `created_at_ms`, the
//!   creation time as epoch milliseconds (sortable, comparable in condition
//!   and filter expressions), derived from the RFC 3339 `created_at`.
//! - v3 `users-drop-created-at` (contract): removes the string `created_at`,
//!   which v2 made redundant. Refuses (fails the item) unless the string is
//!   exactly what `down` would rebuild, so the contract is lossless.
//!   Readers accept every shape: [`user_read_shape`] rebuilds `created_at`
//!   for the user store's decoder, so deploy → migrate → contract never breaks
//!   a live request, and rolling back is `down`.
//!
//! Legacy users:
//! - v4 `users-flag-legacy-bcrypt`: users whose `password_hash` is a legacy
//!   bcrypt hash get `needs_rehash = true`: login already replaces such hashes
//!   with Argon2id on the next success; the flag makes the remaining legacy
//!   accounts countable and addressable (reset campaigns) without parsing
//!   hashes in a scan.

use super::plan::{Migration, Phase, TransformError};
use crate::auth::password;
use crate::store::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const USER_KIND: &str = "user";

/// Every migration, ordered by version.
pub fn all() -> &'static [Migration] {
    MIGRATIONS
}

static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 2,
        name: "users-created-at-ms",
        description: "user items gain created_at_ms (epoch ms) derived from created_at",
        phase: Phase::ExpandBackfill,
        kinds: &[USER_KIND],
        reads: &["created_at"],
        up: add_created_at_ms,
        down: remove_created_at_ms,
    },
    Migration {
        version: 3,
        name: "users-drop-created-at",
        description: "user items lose the RFC 3339 created_at string (created_at_ms replaces it)",
        phase: Phase::Contract,
        kinds: &[USER_KIND],
        reads: &["created_at", "created_at_ms"],
        up: drop_created_at,
        down: restore_created_at,
    },
    Migration {
        version: 4,
        name: "users-flag-legacy-bcrypt",
        description: "users with a legacy bcrypt password hash are flagged needs_rehash (replaced by Argon2id on next login)",
        phase: Phase::Data,
        kinds: &[USER_KIND],
        reads: &["password_hash"],
        up: flag_bcrypt,
        down: unflag_bcrypt,
    },
];

/// Brings a user item of any shipped version into the shape the user store
/// decodes (lazy migrate-on-read): rebuilds `created_at` when v3 removed it.
pub fn user_read_shape(item: &mut Item) {
    if item.contains_key("created_at") {
        return;
    }
    if let Some(text) = number(item, "created_at_ms").and_then(format_ms) {
        item.insert("created_at".to_owned(), AttributeValue::S(text));
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn parse_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The canonical text of an instant: UTC, `Z`, seconds unless there are milliseconds.
pub fn format_ms(ms: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let whole = at.replace_nanosecond(0).ok()?.format(&Rfc3339).ok()?;
    let millis = ms.rem_euclid(1000);
    if millis == 0 {
        Some(whole)
    } else {
        // "...:SSZ" → "...:SS.mmmZ"
        let stem = whole.strip_suffix('Z')?;
        Some(format!("{stem}.{millis:03}Z"))
    }
}

fn add_created_at_ms(item: &mut Item) -> Result<(), TransformError> {
    let text = string(item, "created_at").ok_or_else(|| TransformError::new("created_at is missing"))?;
    let ms = parse_ms(text).ok_or_else(|| TransformError::new("created_at is not RFC 3339"))?;
    match number(item, "created_at_ms") {
        Some(existing) if existing != ms => {
            Err(TransformError::new("created_at_ms disagrees with created_at"))
        }
        _ => {
            item.insert("created_at_ms".to_owned(), AttributeValue::N(ms.to_string()));
            Ok(())
        }
    }
}

fn remove_created_at_ms(item: &mut Item) -> Result<(), TransformError> {
    if string(item, "created_at").is_none() {
        return Err(TransformError::new("created_at is missing: the item is in the contracted (v3) shape"));
    }
    item.remove("created_at_ms");
    Ok(())
}

fn drop_created_at(item: &mut Item) -> Result<(), TransformError> {
    let ms = number(item, "created_at_ms").ok_or_else(|| TransformError::new("created_at_ms is missing"))?;
    let text = string(item, "created_at").ok_or_else(|| TransformError::new("created_at is missing"))?;
    if format_ms(ms).as_deref() != Some(text) {
        return Err(TransformError::new(
            "created_at is not the canonical text of created_at_ms; dropping it would lose data",
        ));
    }
    item.remove("created_at");
    Ok(())
}

fn restore_created_at(item: &mut Item) -> Result<(), TransformError> {
    let ms = number(item, "created_at_ms").ok_or_else(|| TransformError::new("created_at_ms is missing"))?;
    let text = format_ms(ms).ok_or_else(|| TransformError::new("created_at_ms is out of range"))?;
    item.insert("created_at".to_owned(), AttributeValue::S(text));
    Ok(())
}

fn flag_bcrypt(item: &mut Item) -> Result<(), TransformError> {
    let hash =
        string(item, "password_hash").ok_or_else(|| TransformError::new("password_hash is missing"))?;
    if password::is_bcrypt(hash) {
        item.insert("needs_rehash".to_owned(), AttributeValue::Bool(true));
    }
    Ok(())
}

fn unflag_bcrypt(item: &mut Item) -> Result<(), TransformError> {
    item.remove("needs_rehash");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::{self, Direction, plan_item};
    use proptest::prelude::*;

    fn user(created_at: &str, hash: &str) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        Item::from([
            ("pk".into(), s("T#acme#USER#ada@example.com")),
            ("sk".into(), s("USER")),
            ("kind".into(), s("user")),
            ("schema_version".into(), AttributeValue::N("1".into())),
            ("created_at".into(), s(created_at)),
            ("password_hash".into(), s(hash)),
            ("failed_logins".into(), AttributeValue::N("0".into())),
        ])
    }

    #[test]
    fn registry_is_valid() {
        plan::validate(all()).unwrap();
        assert_eq!(plan::latest(all()), 4);
    }

    #[test]
    fn canonical_times() {
        assert_eq!(format_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(format_ms(1_700_000_000_123).as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(parse_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_ms("2023-11-14T23:13:20+01:00"), Some(1_700_000_000_000));
        // The clock module's format is canonical.
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(format_ms(1_800_000_000_000), Some(crate::clock::rfc3339(at)));
    }

    #[test]
    fn full_chain_round_trips_and_flags_only_bcrypt() {
        let legacy =
            user("2026-01-02T03:04:05Z", "$2b$12$abcdefghijklmnopqrstuu5i2bYwbLhP7T2Ux3tY0d5oBm6J3Yv2");
        let up = plan_item(all(), Direction::Up, 4, &legacy).unwrap().unwrap();
        assert_eq!(up.applied, vec![2, 3, 4]);
        assert_eq!(up.after.get("needs_rehash"), Some(&AttributeValue::Bool(true)));
        assert!(!up.after.contains_key("created_at"));
        assert_eq!(up.after.get("created_at_ms"), Some(&AttributeValue::N("1767323045000".into())));
        let down = plan_item(all(), Direction::Down, 1, &up.after).unwrap().unwrap();
        assert_eq!(down.after, legacy);

        let modern = user("2026-01-02T03:04:05Z", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA");
        let up = plan_item(all(), Direction::Up, 4, &modern).unwrap().unwrap();
        assert!(!up.after.contains_key("needs_rehash"));
    }

    #[test]
    fn contract_refuses_lossy_items_and_reader_rebuilds_created_at() {
        let odd = user("2026-01-02T04:04:05+01:00", "x");
        let expanded = plan_item(all(), Direction::Up, 2, &odd).unwrap().unwrap();
        assert!(matches!(
            plan_item(all(), Direction::Up, 3, &expanded.after),
            Err(plan::PlanError::Transform { version: 3, .. })
        ));

        let fine = user("2026-01-02T03:04:05Z", "x");
        let mut contracted = plan_item(all(), Direction::Up, 3, &fine).unwrap().unwrap().after;
        assert!(!contracted.contains_key("created_at"));
        user_read_shape(&mut contracted);
        assert_eq!(contracted.get("created_at"), fine.get("created_at"));
    }

    proptest! {
        #[test]
        fn down_of_up_is_identity(
            seconds in 0i64..4_000_000_000,
            millis in 0i64..1000,
            bcrypt in any::<bool>(),
            target in 1u32..=4,
        ) {
            let ms = seconds * 1000 + millis;
            let created = format_ms(ms).unwrap();
            let hash = if bcrypt { "$2y$10$0123456789012345678901uXYZ" } else { "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA" };
            let original = user(&created, hash);
            let up = plan_item(all(), Direction::Up, target, &original).unwrap();
            let migrated = up.map(|p| p.after).unwrap_or_else(|| original.clone());
            let down = plan_item(all(), Direction::Down, 1, &migrated).unwrap();
            let restored = down.map(|p| p.after).unwrap_or(migrated);
            prop_assert_eq!(restored, original);
        }
    }
}
