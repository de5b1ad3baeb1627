//! Pure planning: which migrations an item needs to reach a target version,
//! and what it looks like afterwards. No I/O; the runner and the unit tests
//! share it.
//!
//! Versions are global and ordered; an item's `schema_version` is the version
//! of the last migration applied to it that touches its kind (or
//! [`BASE_VERSION`] when none has). So a migration's "from" version differs by
//! kind: it is the previous migration touching that kind, or the base.
//! Planning starts from the item's own version, not from the table's: an item
//! written in an old shape after a run (a straggler) is brought forward by the
//! next run, and a run that failed half way is undone item by item by `down`.
//!
//! What an item looks like is the store's: a migration names one of its
//! [`LayoutChange`]s, and the plan of an item is the store's [`ItemPlan`].

use crate::store::Item;
use crate::store::migrations as layout;
pub use crate::store::migrations::{
    BASE_VERSION, Direction, ItemPlan, LayoutChange, Transform, TransformError,
};
use std::collections::BTreeSet;

/// Where a migration sits in an expand → backfill → contract sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Adds data (new attributes derived from existing ones); readers of the
    /// old shape are unaffected, readers of the new shape must accept the old.
    ExpandBackfill,
    /// Removes data the previous phase made redundant; runs only after every
    /// reader accepts the new shape.
    Contract,
    /// Changes values without changing the shape (e.g. flags for a fix-up).
    Data,
}

/// What a migration computes with I/O before its pure transforms can plan
/// an item (e.g. a user's data key from KMS, a keyed hash): the attributes
/// it adds to the item the plan is computed from, none when the item needs
/// nothing. `dry_run`: no side effects and no keys (placeholders).
pub type Prepare = for<'a> fn(
    &'a crate::app::App,
    Direction,
    bool,
    &'a Item,
) -> futures::future::BoxFuture<'a, Result<Item, crate::error::AppError>>;

#[derive(Clone)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub description: &'static str,
    pub phase: Phase,
    /// The store's change of the item layouts this migration applies.
    pub change: LayoutChange,
    /// What the change needs computed first, if anything.
    pub prepare: Option<Prepare>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// The `kind`s of the items this migration transforms.
    pub fn kinds(&self) -> &'static [&'static str] {
        self.change.kinds
    }

    pub fn touches(&self, kind: &str) -> bool {
        self.change.kinds.contains(&kind)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("migration versions must start above {BASE_VERSION} and strictly increase; {0} does not")]
    Order(u32),
    #[error("migration {0} touches no item kind")]
    NoKinds(u32),
}

/// Checks the registry's invariants (run by a unit test and at every command).
pub fn validate(migrations: &[Migration]) -> Result<(), RegistryError> {
    let mut previous = BASE_VERSION;
    for m in migrations {
        if m.version <= previous {
            return Err(RegistryError::Order(m.version));
        }
        if m.kinds().is_empty() {
            return Err(RegistryError::NoKinds(m.version));
        }
        previous = m.version;
    }
    Ok(())
}

/// The highest version known to this code.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(BASE_VERSION, |m| m.version)
}

/// The version items of `kind` have just before migration `index` applies.
pub fn from_version(migrations: &[Migration], index: usize, kind: &str) -> u32 {
    migrations[..index].iter().rev().find(|m| m.touches(kind)).map_or(BASE_VERSION, |m| m.version)
}

/// The version items of `kind` have once the table is at `version`.
pub fn kind_version_at(migrations: &[Migration], version: u32, kind: &str) -> u32 {
    migrations
        .iter()
        .filter(|m| m.version <= version && m.touches(kind))
        .map(|m| m.version)
        .max()
        .unwrap_or(BASE_VERSION)
}

/// The item kinds any migration in `(low, high]` touches.
pub fn kinds_between(migrations: &[Migration], low: u32, high: u32) -> Vec<&'static str> {
    let kinds: BTreeSet<&'static str> = migrations
        .iter()
        .filter(|m| m.version > low && m.version <= high)
        .flat_map(|m| m.kinds().iter().copied())
        .collect();
    kinds.into_iter().collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("item has no kind")]
    NoKind,
    #[error("schema_version is not a number")]
    BadVersion,
    #[error("schema_version {version} of a {kind} item is not on its migration chain")]
    OffChain { kind: String, version: u32 },
    #[error("migration {version}: {error}")]
    Transform { version: u32, error: TransformError },
}

pub fn item_kind(item: &Item) -> Option<&str> {
    layout::item_kind(item)
}

/// The item's `schema_version`; an item without one predates versioning and
/// is at [`BASE_VERSION`].
pub fn item_version(item: &Item) -> Result<u32, PlanError> {
    layout::item_version(item).ok_or(PlanError::BadVersion)
}

/// Plans `item` towards `target` in `direction`: `None` when the item needs
/// nothing (already there, or a kind no migration in range touches).
pub fn plan_item(
    migrations: &[Migration],
    direction: Direction,
    target: u32,
    item: &Item,
) -> Result<Option<ItemPlan>, PlanError> {
    let kind = item_kind(item).ok_or(PlanError::NoKind)?.to_owned();
    let from = item_version(item)?;
    let mut version = from;
    let mut after = item.clone();
    let mut applied = Vec::new();
    let mut reads: BTreeSet<&'static str> = BTreeSet::new();
    let mut companions = Vec::new();
    let mut sides = Vec::new();
    match direction {
        Direction::Up => {
            for (index, m) in migrations.iter().enumerate() {
                if m.version > target {
                    break;
                }
                if m.version <= version || !m.touches(&kind) {
                    continue;
                }
                if from_version(migrations, index, &kind) != version {
                    return Err(PlanError::OffChain { kind, version });
                }
                (m.change.up)(&mut after)
                    .map_err(|error| PlanError::Transform { version: m.version, error })?;
                companions.extend(
                    (m.change.companions)(&after)
                        .map_err(|error| PlanError::Transform { version: m.version, error })?,
                );
                sides.extend(
                    (m.change.sides)(&after)
                        .map_err(|error| PlanError::Transform { version: m.version, error })?,
                );
                reads.extend(m.change.reads.iter().copied());
                applied.push(m.version);
                version = m.version;
            }
        }
        Direction::Down => {
            for (index, m) in migrations.iter().enumerate().rev() {
                if m.version <= target {
                    break;
                }
                if m.version > version || !m.touches(&kind) {
                    continue;
                }
                if m.version != version {
                    return Err(PlanError::OffChain { kind, version });
                }
                (m.change.down)(&mut after)
                    .map_err(|error| PlanError::Transform { version: m.version, error })?;
                sides.extend(
                    (m.change.sides)(&after)
                        .map_err(|error| PlanError::Transform { version: m.version, error })?,
                );
                reads.extend(m.change.reads.iter().copied());
                applied.push(m.version);
                version = from_version(migrations, index, &kind);
            }
        }
    }
    if applied.is_empty() {
        return Ok(None);
    }
    let plan = ItemPlan::new(from, version, applied, reads.into_iter().collect(), after);
    Ok(Some(plan.with_companions(companions).with_sides(sides)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn add_a(item: &mut Item) -> Result<(), TransformError> {
        item.insert("a".into(), s("1"));
        Ok(())
    }
    fn remove_a(item: &mut Item) -> Result<(), TransformError> {
        item.remove("a");
        Ok(())
    }
    fn add_b(item: &mut Item) -> Result<(), TransformError> {
        item.insert("b".into(), s("2"));
        Ok(())
    }
    fn remove_b(item: &mut Item) -> Result<(), TransformError> {
        item.remove("b");
        Ok(())
    }
    fn refuse(_: &mut Item) -> Result<(), TransformError> {
        Err(TransformError::new("no"))
    }

    fn registry() -> Vec<Migration> {
        let m = |version, kinds, up, down| Migration {
            version,
            name: "m",
            description: "",
            phase: Phase::Data,
            prepare: None,
            change: LayoutChange {
                kinds,
                reads: &["x"],
                up,
                down,
                companions: layout::no_companions,
                sides: layout::no_sides,
            },
        };
        vec![
            m(2, &["user"][..], add_a as Transform, remove_a as Transform),
            m(3, &["payment"][..], add_b as Transform, remove_b as Transform),
            m(4, &["user", "payment"][..], add_b as Transform, remove_b as Transform),
        ]
    }

    fn item(kind: &str, version: Option<u32>) -> Item {
        let mut item = Item::from([("pk".into(), s("p")), ("sk".into(), s("s")), ("kind".into(), s(kind))]);
        if let Some(v) = version {
            item.insert("schema_version".into(), AttributeValue::N(v.to_string()));
        }
        item
    }

    #[test]
    fn versions_per_kind() {
        let r = registry();
        assert!(validate(&r).is_ok());
        assert_eq!(from_version(&r, 0, "user"), 1);
        assert_eq!(from_version(&r, 2, "user"), 2);
        assert_eq!(from_version(&r, 2, "payment"), 3);
        assert_eq!(kind_version_at(&r, 3, "user"), 2);
        assert_eq!(kind_version_at(&r, 1, "user"), 1);
        assert_eq!(kinds_between(&r, 2, 4), vec!["payment", "user"]);
    }

    #[test]
    fn up_chains_from_the_items_own_version_and_down_reverses() {
        let r = registry();
        let user = item("user", None);
        let plan = plan_item(&r, Direction::Up, 4, &user).unwrap().unwrap();
        assert_eq!((plan.from, plan.to, plan.applied.clone()), (1, 4, vec![2, 4]));
        assert_eq!(plan.after.get("a"), Some(&s("1")));
        assert_eq!(plan.after.get("b"), Some(&s("2")));
        let back = plan_item(&r, Direction::Down, 1, &plan.after).unwrap().unwrap();
        assert_eq!((back.from, back.to, back.applied.clone()), (4, 1, vec![4, 2]));
        let mut expected = user.clone();
        expected.insert("schema_version".into(), AttributeValue::N("1".into()));
        assert_eq!(back.after, expected);

        // Partial targets stop on the kind's own chain.
        let to3 = plan_item(&r, Direction::Up, 3, &user).unwrap().unwrap();
        assert_eq!(to3.to, 2);
        assert_eq!(plan_item(&r, Direction::Up, 3, &to3.after).unwrap(), None);
        let down3 = plan_item(&r, Direction::Down, 3, &plan.after).unwrap().unwrap();
        assert_eq!(down3.to, 2);
    }

    #[test]
    fn untouched_kinds_and_items_at_target_need_nothing() {
        let r = registry();
        assert_eq!(plan_item(&r, Direction::Up, 4, &item("session", Some(1))).unwrap(), None);
        assert_eq!(plan_item(&r, Direction::Up, 4, &item("user", Some(4))).unwrap(), None);
        assert_eq!(plan_item(&r, Direction::Down, 1, &item("user", Some(1))).unwrap(), None);
    }

    #[test]
    fn off_chain_and_failing_transforms_are_errors() {
        let mut r = registry();
        assert_eq!(
            plan_item(&r, Direction::Up, 4, &item("user", Some(3))),
            Err(PlanError::OffChain { kind: "user".into(), version: 3 })
        );
        assert_eq!(
            plan_item(
                &r,
                Direction::Up,
                4,
                &item("user", None).into_iter().filter(|(k, _)| k != "kind").collect()
            ),
            Err(PlanError::NoKind)
        );
        r[0].change.up = refuse;
        assert!(matches!(
            plan_item(&r, Direction::Up, 4, &item("user", None)),
            Err(PlanError::Transform { version: 2, .. })
        ));
    }

    #[test]
    fn registry_order_is_checked() {
        let mut r = registry();
        r[1].version = 2;
        assert_eq!(validate(&r), Err(RegistryError::Order(2)));
    }
}
