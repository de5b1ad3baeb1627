//! Idempotency records: one item per (tenant, principal, operation, key),
//! so one caller's key never answers another's request. The record is
//! written COMPLETED in the same transaction as the business change, so a
//! fresh request costs one read and one transaction, and a crashed invocation
//! leaves nothing that blocks the key. Records marked IN_PROGRESS (the
//! Powertools shape, for operations that must reserve a key before an
//! external side effect) block the key only until `in_progress_until_ms`.
//!
//! Records of the release before, scoped per tenant only
//! (`IDEM#<operation>#<key>`), are not migrated: they expire within their TTL
//! (`IdempotencyTtlSeconds`). Until then [`legacy_record_key`] finds them, so
//! a key used before the upgrade is refused instead of running twice.

use super::labels::IdempotentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::auth::principal::{Principal, PrincipalKind};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub tenant_id: String,
    /// Whose key it is: [`principal_scope`] of the caller (empty on legacy records).
    #[serde(default)]
    pub principal: String,
    pub operation: String,
    pub idempotency_key: String,
    pub status: RecordStatus,
    /// SHA-256 of the request (body as sorted JSON); a different request under the same key is refused.
    pub fingerprint: String,
    #[serde(default)]
    pub response_status: u16,
    #[serde(default)]
    pub response_body: String,
    pub created_at: String,
    /// Epoch seconds; the TTL attribute, also checked in code.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_until_ms: Option<i64>,
}

/// The caller part of a record's key: `user:<id>` or `client:<id>`.
pub fn principal_scope(principal: &Principal) -> String {
    match principal.kind {
        PrincipalKind::User => format!("user:{}", principal.id),
        PrincipalKind::Client => format!("client:{}", principal.id),
    }
}

fn record_pk(tenant: &str, principal: &str, operation: &str, idempotency_key: &str) -> String {
    tenant_pk(tenant, &format!("IDEM#{principal}#{operation}#{idempotency_key}"))
}

pub fn record_key(tenant: &str, principal: &str, operation: &str, idempotency_key: &str) -> Item {
    key(record_pk(tenant, principal, operation, idempotency_key), "IDEM")
}

/// Where the release before kept the record of this key (tenant-scoped).
pub fn legacy_record_key(tenant: &str, operation: &str, idempotency_key: &str) -> Item {
    key(tenant_pk(tenant, &format!("IDEM#{operation}#{idempotency_key}")), "IDEM")
}

pub fn decode(item: Item) -> Result<IdempotencyRecord, AppError> {
    from_item(item)
}

/// Writes the completed record. The condition lets the write through only if
/// no live record holds the key: absent, expired (TTL deletes late), or an
/// abandoned in-progress reservation.
pub fn complete<L: IdempotentLabel>(
    table: &str,
    record: &IdempotencyRecord,
    now: i64,
    now_ms: i64,
) -> Result<Action<L>, AppError> {
    let pk = record_pk(&record.tenant_id, &record.principal, &record.operation, &record.idempotency_key);
    let item = Keyed::new(pk, "IDEM", "idempotency", record).item()?;
    Action::put(
        table,
        L::IDEMPOTENCY,
        item,
        Some(
            "attribute_not_exists(pk) OR expires_at <= :now \
             OR (#status = :in_progress AND in_progress_until_ms < :now_ms)",
        ),
        Expr::default()
            .name("#status", "status")
            .value(":now", value(now)?)
            .value(":now_ms", value(now_ms)?)
            .value(":in_progress", value(RecordStatus::InProgress)?),
    )
}
