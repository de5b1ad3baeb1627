//! The change of one item's layout, as the store defines it: the item's
//! `kind` and layout version (`schema_version`), a reversible
//! [`LayoutChange`] between two layouts of some kinds, and the [`ItemPlan`]
//! a run computes for one item from a chain of them (written by
//! [`super::apply_plan`]).

use crate::store::Item;
use aws_sdk_dynamodb::types::AttributeValue;

/// The layout version of an item without `schema_version`, and of every
/// kind before any migration.
pub const BASE_VERSION: u32 = 1;

/// One direction of a layout change: edits the item in place or explains
/// why it cannot (the item is counted as failed and left untouched).
pub type Transform = fn(&mut Item) -> Result<(), TransformError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

impl TransformError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Items an item's new layout needs beside it (e.g. the directory entry of
/// a user), built from the item after `up`. Each is created only if absent
/// and left in place by `down`: they are what later code reads, not part of
/// the item's own layout.
pub type Companions = fn(&Item) -> Result<Vec<Item>, TransformError>;

/// For changes that need no other item.
pub fn no_companions(_: &Item) -> Result<Vec<Item>, TransformError> {
    Ok(Vec::new())
}

/// Another item's change that must commit with the item's own write (e.g.
/// the directory entry of a user item that moves to another key): its key,
/// the attributes to set and those to remove. The item must exist.
#[derive(Debug, Clone, PartialEq)]
pub struct SideUpdate {
    pub key: Item,
    pub set: Item,
    pub remove: Vec<String>,
}

/// The [`SideUpdate`]s a change needs, built from the item after the
/// transform (in either direction).
pub type Sides = fn(&Item) -> Result<Vec<SideUpdate>, TransformError>;

/// For changes that touch no other item.
pub fn no_sides(_: &Item) -> Result<Vec<SideUpdate>, TransformError> {
    Ok(Vec::new())
}

/// A reversible change between two layouts, with `down(up(x)) == x`. A
/// transform may give the item another `pk` (a move): the runner then puts
/// the item under its new key and deletes the old one in one transaction,
/// with the side updates.
#[derive(Debug, Clone, Copy)]
pub struct LayoutChange {
    /// The `kind`s of the items this change transforms.
    pub kinds: &'static [&'static str],
    /// Attributes the transforms derive their output from. The conditional
    /// update requires them unchanged, so a concurrent live write to one of
    /// them makes the runner re-read the item instead of writing a stale result.
    pub reads: &'static [&'static str],
    pub up: Transform,
    pub down: Transform,
    /// What `up` needs created beside the item ([`no_companions`] for most).
    pub companions: Companions,
    /// Other items changed with the item's write ([`no_sides`] for most).
    pub sides: Sides,
}

/// What one item needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPlan {
    pub from: u32,
    pub to: u32,
    /// Versions of the migrations applied, in the order applied.
    pub applied: Vec<u32>,
    /// Attributes the conditional update must find unchanged.
    pub reads: Vec<&'static str>,
    /// The item afterwards (its `schema_version` already set to `to`).
    pub after: Item,
    /// Items to create beside it if they are absent (see [`Companions`]).
    pub companions: Vec<Item>,
    /// Other items' changes that commit with the item's write (see [`Sides`]).
    pub sides: Vec<SideUpdate>,
}

impl ItemPlan {
    /// The plan of `after`, a copy of the item the transforms edited, now at `to`.
    pub fn new(from: u32, to: u32, applied: Vec<u32>, reads: Vec<&'static str>, mut after: Item) -> Self {
        after.insert("schema_version".to_owned(), AttributeValue::N(to.to_string()));
        Self { from, to, applied, reads, after, companions: Vec::new(), sides: Vec::new() }
    }

    /// The same plan, also creating `companions` if they are absent.
    pub fn with_companions(mut self, companions: Vec<Item>) -> Self {
        self.companions = companions;
        self
    }

    /// The same plan, also changing other items with the item's write.
    pub fn with_sides(mut self, sides: Vec<SideUpdate>) -> Self {
        self.sides = sides;
        self
    }
}

/// The item's `kind`.
pub fn item_kind(item: &Item) -> Option<&str> {
    match item.get("kind") {
        Some(AttributeValue::S(kind)) => Some(kind),
        _ => None,
    }
}

/// The item's layout version: [`BASE_VERSION`] when it has no
/// `schema_version` (it predates versioning); `None` when that is not a number.
pub fn item_version(item: &Item) -> Option<u32> {
    match item.get("schema_version") {
        None => Some(BASE_VERSION),
        Some(AttributeValue::N(n)) => n.parse().ok(),
        Some(_) => None,
    }
}
