//! Migration bookkeeping and the per-item conditional transform.
//!
//! - [`lock`](self::acquire_lock): the lease lock, so two runs never overlap;
//! - runs ([`RunRecord`]), segment checkpoints ([`Checkpoint`]) and the
//!   history ([`HistoryRecord`]);
//! - the change of one item: its layout version, the store's reversible
//!   [`LayoutChange`]s and the [`ItemPlan`] a run computes from them;
//! - the data items: segment pages ([`scan_page`]), the conditional write
//!   of a plan ([`apply_plan`]) and of its companions ([`create_companions`]).
//!
//! Bookkeeping items live under the reserved tenant [`SYSTEM_TENANT`] (not a
//! valid tenant id, so it can never collide with one):
//!
//! | item | pk | sk | kind |
//! | --- | --- | --- | --- |
//! | lease lock | `T#_system#MIGRATE#LOCK` | `LOCK` | `migration_lock` |
//! | run | `T#_system#MIGRATE#RUN#<run_id>` | `RUN` | `migration_run` |
//! | segment checkpoint | `T#_system#MIGRATE#RUN#<run_id>` | `SEGMENT#<nnnnn>` | `migration_checkpoint` |
//! | history entry | `T#_system#MIGRATE#HISTORY` | `RUN#<run_id>` | `migration_history` |
//!
//! Run ids are UUIDv7, so history sorts in start order. The lock's expiry is
//! `lease_expires_at_ms`, deliberately not the TTL attribute: an expired
//! lease is taken over by the next run, which must see whose it was.

mod apply;
mod change;
mod checkpoints;
mod history;
mod lock;
mod runs;
mod scan;

pub use apply::{Applied, apply_plan, create_companions};
pub use change::{
    BASE_VERSION, Companions, ItemPlan, LayoutChange, SideUpdate, Sides, Transform, TransformError,
    item_kind, item_version, no_companions, no_sides,
};
pub use checkpoints::{Checkpoint, Counters, checkpoints, get_checkpoint, save_checkpoint};
pub use history::{HistoryRecord, MigrationRef, history, put_history};
pub use lock::{Acquire, Lease, acquire_lock, read_lock, release_lock, renew_lock};
pub use runs::{
    Direction, RunRecord, RunStatus, add_failed, create_run, finish_run, get_run, mark_segment_done,
};
pub use scan::{Page, item_key, read_item, scan_page};

use super::{Item, key, tenant_pk};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

/// The pseudo-tenant of platform bookkeeping items.
pub const SYSTEM_TENANT: &str = "_system";
pub const LOCK_KIND: &str = "migration_lock";
pub const RUN_KIND: &str = "migration_run";
pub const CHECKPOINT_KIND: &str = "migration_checkpoint";
pub const HISTORY_KIND: &str = "migration_history";
/// Failed item keys kept per segment for the report.
pub const FAILED_KEYS_KEPT: usize = 10;

fn lock_pk() -> String {
    tenant_pk(SYSTEM_TENANT, "MIGRATE#LOCK")
}

fn lock_key() -> Item {
    key(lock_pk(), "LOCK")
}

fn run_pk(run_id: &str) -> String {
    tenant_pk(SYSTEM_TENANT, &format!("MIGRATE#RUN#{run_id}"))
}

fn run_key(run_id: &str) -> Item {
    key(run_pk(run_id), "RUN")
}

fn segment_sk(segment: u32) -> String {
    format!("SEGMENT#{segment:05}")
}

fn history_pk() -> String {
    tenant_pk(SYSTEM_TENANT, "MIGRATE#HISTORY")
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}
