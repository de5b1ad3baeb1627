//! The migrations this code ships, in order. Each names a reversible layout
//! change of the store ([`crate::store::user_layouts`], which documents what
//! each does to an item) with `down(up(x)) == x` (checked by the unit tests
//! below and by the emulator tests over ten thousand items).
//!
//! User items, expand → backfill → contract of the creation time:
//! - v2 `users-created-at-ms` (expand + backfill): adds `created_at_ms`.
//! - v3 `users-drop-created-at` (contract): removes the string `created_at`;
//!   readers of every shape keep working, rolling back is `down`.
//!
//! Legacy users:
//! - v4 `users-flag-legacy-bcrypt`: flags users with a legacy bcrypt hash
//!   `needs_rehash`.
//!
//! The access model over data that predates it ([`crate::store::account_layouts`]):
//! - v5 `users-directory`: every user gets its directory entry (role
//!   `member`) and its tenant a tenant record (open to signup), each if absent.
//! - v6 `accounts-owner-and-limit`: every account gets an owner (the tenant)
//!   and a limit (the documented default on overdraft accounts, else 0), and
//!   its tenant a record if absent.
//!
//! Personal data sealed per person, expand + backfill → contract
//! ([`crate::privacy::personal`]):
//! - v7 `users-seal-email` (expand + backfill): user items and directory
//!   entries keep the plaintext email and get its lookup hash and its sealed
//!   value (each user's key created if absent): both written, login works
//!   from either.
//! - v8 `users-drop-plaintext-email` (contract): each user item moves to its
//!   lookup key without the plaintext, its directory entry losing the
//!   plaintext in the same transaction; `down` opens the sealed value to
//!   move it back.

use super::plan::{Migration, Phase};
use crate::store::{account_layouts, user_layouts};

pub const USER_KIND: &str = user_layouts::KIND;

/// The canonical text of a creation time in epoch milliseconds (the form
/// the contract requires of `created_at`).
pub use crate::clock::rfc3339_ms as format_ms;

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
        change: user_layouts::CREATED_AT_MS,
        prepare: None,
    },
    Migration {
        version: 3,
        name: "users-drop-created-at",
        description: "user items lose the RFC 3339 created_at string (created_at_ms replaces it)",
        phase: Phase::Contract,
        change: user_layouts::DROP_CREATED_AT,
        prepare: None,
    },
    Migration {
        version: 4,
        name: "users-flag-legacy-bcrypt",
        description: "users with a legacy bcrypt password hash are flagged needs_rehash (replaced by Argon2id on next login)",
        phase: Phase::Data,
        change: user_layouts::FLAG_LEGACY_BCRYPT,
        prepare: None,
    },
    Migration {
        version: 5,
        name: "users-directory",
        description: "users that predate roles get their directory entry (member) and their tenant a record (open signup)",
        phase: Phase::ExpandBackfill,
        change: user_layouts::DIRECTORY,
        prepare: None,
    },
    Migration {
        version: account_layouts::SCHEMA_VERSION,
        name: "accounts-owner-and-limit",
        description: "accounts that predate owners become tenant-owned; overdraft accounts get the default limit",
        phase: Phase::ExpandBackfill,
        change: account_layouts::OWNER_AND_LIMIT,
        prepare: None,
    },
    Migration {
        version: user_layouts::SEAL_EMAIL_VERSION,
        name: "users-seal-email",
        description: "users and directory entries get the email's lookup hash and its value sealed with the user's own key (beside the plaintext)",
        phase: Phase::ExpandBackfill,
        change: user_layouts::SEAL_EMAIL,
        prepare: Some(crate::privacy::personal::prepare_email),
    },
    Migration {
        version: user_layouts::DROP_PLAINTEXT_EMAIL_VERSION,
        name: "users-drop-plaintext-email",
        description: "users move to their lookup key without the plaintext email; their directory entries lose it too",
        phase: Phase::Contract,
        change: user_layouts::DROP_PLAINTEXT_EMAIL,
        prepare: Some(crate::privacy::personal::prepare_email),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::{self, Direction, plan_item};
    use crate::store::Item;
    use aws_sdk_dynamodb::types::AttributeValue;
    use proptest::prelude::*;

    fn user(created_at: &str, hash: &str) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        Item::from([
            ("pk".into(), s("T#acme#USER#ada@example.com")),
            ("sk".into(), s("USER")),
            ("kind".into(), s("user")),
            ("schema_version".into(), AttributeValue::N("1".into())),
            ("tenant_id".into(), s("acme")),
            ("user_id".into(), s("0190aaaa-0000-7000-8000-000000000001")),
            ("email".into(), s("ada@example.com")),
            ("created_at".into(), s(created_at)),
            ("password_hash".into(), s(hash)),
            ("failed_logins".into(), AttributeValue::N("0".into())),
        ])
    }

    #[test]
    fn registry_is_valid() {
        plan::validate(all()).unwrap();
        assert_eq!(plan::latest(all()), 8);
    }

    #[test]
    fn canonical_times() {
        assert_eq!(format_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(format_ms(1_700_000_000_123).as_deref(), Some("2023-11-14T22:13:20.123Z"));
        // The clock module's format is canonical.
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
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
    fn legacy_users_get_a_member_entry_and_an_open_tenant() {
        let legacy = user("2026-01-02T03:04:05Z", "x");
        let up = plan_item(all(), Direction::Up, 6, &legacy).unwrap().unwrap();
        assert_eq!(up.applied, vec![2, 3, 4, 5], "v6 is the accounts'");
        assert_eq!(up.after.get("schema_version"), Some(&AttributeValue::N("5".into())));
        let [entry, tenant] = &up.companions[..] else { panic!("{:?}", up.companions) };
        let s = |v: &str| Some(AttributeValue::S(v.to_owned()));
        assert_eq!(entry.get("pk").cloned(), s("T#acme#MEMBERS"));
        assert_eq!(entry.get("sk").cloned(), s("USER#0190aaaa-0000-7000-8000-000000000001"));
        assert_eq!(
            (entry.get("role").cloned(), entry.get("status").cloned(), entry.get("email").cloned()),
            (s("member"), s("active"), s("ada@example.com"))
        );
        assert_eq!(entry.get("created_at").cloned(), s("2026-01-02T03:04:05Z"), "rebuilt after the contract");
        assert_eq!(
            (tenant.get("pk").cloned(), tenant.get("signup").cloned()),
            (s("T#acme#TENANT"), s("open"))
        );
        assert_eq!(tenant.get("gsi1pk").cloned(), s("TENANTS"), "listed for the operator");
        let down = plan_item(all(), Direction::Down, 1, &up.after).unwrap().unwrap();
        assert!(down.companions.is_empty(), "down creates nothing and removes nothing");
        assert_eq!(down.after, legacy);
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
        user_layouts::read_shape(&mut contracted);
        assert_eq!(contracted.get("created_at"), fine.get("created_at"));
    }

    #[test]
    fn sealing_moves_users_to_their_lookup_key_with_their_entry_and_back() {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let legacy = user("2026-01-02T03:04:05Z", "x");
        let lookup = "ab".repeat(32);
        // Unprepared (no hash, no sealed value: the prepare step's), v7 refuses the item.
        assert!(matches!(
            plan_item(all(), Direction::Up, 8, &legacy),
            Err(plan::PlanError::Transform { version: 7, .. })
        ));
        let mut prepared = legacy.clone();
        prepared.extend(user_layouts::sealed_fields(lookup.clone(), "v1.c2VhbGVk".into()));
        let expanded = plan_item(all(), Direction::Up, 7, &prepared).unwrap().unwrap();
        assert_eq!(expanded.after.get("pk"), legacy.get("pk"), "expand keeps the key");
        assert_eq!(expanded.after.get("email"), legacy.get("email"), "and the plaintext");
        assert!(expanded.sides.is_empty());

        let up = plan_item(all(), Direction::Up, 8, &prepared).unwrap().unwrap();
        assert_eq!(up.applied, vec![2, 3, 4, 5, 7, 8]);
        assert_eq!(up.after.get("pk"), Some(&s(&format!("T#acme#USER#{lookup}"))));
        assert!(!up.after.contains_key("email"), "the contract drops the plaintext");
        let [entry] = &up.sides[..] else { panic!("{:?}", up.sides) };
        assert_eq!(entry.key.get("pk"), Some(&s("T#acme#MEMBERS")));
        assert_eq!(entry.remove, ["email"], "the directory entry loses it in the same write");
        assert_eq!(entry.set.get("email_lookup"), Some(&s(&lookup)));

        // Down opens the sealed value (prepared: the plaintext) and moves back.
        let mut reopened = up.after.clone();
        reopened.extend(user_layouts::plaintext_field("ada@example.com".into()));
        let down = plan_item(all(), Direction::Down, 1, &reopened).unwrap().unwrap();
        assert_eq!(down.after, legacy, "down(up(x)) == x");
        let [entry] = &down.sides[..] else { panic!("{:?}", down.sides) };
        assert_eq!(entry.set.get("email"), Some(&s("ada@example.com")));
        // Erased (nothing to open): the item cannot go back.
        assert!(plan_item(all(), Direction::Down, 1, &up.after).is_err());
    }

    fn account(overdraft: bool, available: i64) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        Item::from([
            ("pk".into(), s("T#acme#ACCOUNT#a")),
            ("sk".into(), s("ACCOUNT")),
            ("kind".into(), s("account")),
            ("schema_version".into(), AttributeValue::N("1".into())),
            ("tenant_id".into(), s("acme")),
            ("created_at".into(), s("2026-01-02T03:04:05Z")),
            ("allow_overdraft".into(), AttributeValue::Bool(overdraft)),
            ("available".into(), AttributeValue::N(available.to_string())),
        ])
    }

    proptest! {
        #[test]
        fn accounts_round_trip_and_get_their_tenant(
            overdraft in any::<bool>(),
            available in -1_000_000_000_000i64..1_000_000_000_000,
            target in 1u32..=6,
        ) {
            let original = account(overdraft, available);
            let up = plan_item(all(), Direction::Up, target, &original).unwrap();
            prop_assert_eq!(up.is_some(), target == 6, "only v6 touches accounts");
            let Some(up) = up else { return Ok(()) };
            prop_assert_eq!(up.companions.len(), 1, "the tenant record");
            let down = plan_item(all(), Direction::Down, 1, &up.after).unwrap().unwrap();
            prop_assert_eq!(down.after, original);
        }

        #[test]
        fn down_of_up_is_identity(
            seconds in 0i64..4_000_000_000,
            millis in 0i64..1000,
            bcrypt in any::<bool>(),
            target in 1u32..=6,
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
