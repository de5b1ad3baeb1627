//! Retention: how long each kind of record is kept, per tenant, and the
//! scheduled `retention` job that deletes what is past it.
//!
//! | kind | kept | enforced by |
//! | --- | --- | --- |
//! | sessions (and their refresh tokens) | until they expire | TTL on `expires_at`; the job deletes what TTL left behind |
//! | idempotency records | until they expire (`IdempotencyTtlSeconds`, ≥ 24 h) | TTL on `expires_at`; the job deletes what TTL left behind |
//! | outbox items | `outbox_days` after publication (default 30) | the job |
//! | payment events | `payment_events_days` after the event (default 2555, 7 years) | the job |
//! | audit entries | `audit_days` after they were recorded (default 2555) | the job, only up to a signed checkpoint |
//!
//! Sessions and idempotency records are kept until their expiry, the same
//! for every tenant: their TTL attribute is the expiry the code checks (a
//! record past it is dead already), so there is nothing to choose per tenant.
//! The per-tenant policy (the operator's `tenants` job, `set_retention`)
//! sets the other three.
//!
//! Audit entries go only below a signed checkpoint, oldest first, and only
//! while the chain verifies against its checkpoints (a broken chain is
//! evidence, never deleted), so verification always starts from a signed
//! checkpoint ([`crate::audit::chain::Verifier::anchored`]).

use crate::app::App;
use crate::audit::trust;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use crate::store::labels::PrivacyLabel;
use crate::store::retention::{self as store, Candidate, PolicyRecord, RecordKind, Since};
use crate::store::tx::Tx;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

const DAY: i64 = 86_400;

/// A tenant's retention, in days per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub outbox_days: u32,
    pub payment_events_days: u32,
    pub audit_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { outbox_days: 30, payment_events_days: 2555, audit_days: 2555 }
    }
}

/// The bounds of each value: an outbox item is kept at least a day (the
/// sweep and redelivery need it); payment events and audit entries, which
/// are financial and accountability records, at least a year.
pub const OUTBOX_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
pub const PAYMENT_EVENTS_DAYS: std::ops::RangeInclusive<u32> = 365..=3650;
pub const AUDIT_DAYS: std::ops::RangeInclusive<u32> = 365..=3650;

/// `set_retention`: the values to change (absent: unchanged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    #[serde(default)]
    pub outbox_days: Option<serde_json::Value>,
    #[serde(default)]
    pub payment_events_days: Option<serde_json::Value>,
    #[serde(default)]
    pub audit_days: Option<serde_json::Value>,
}

fn days(
    field: &str,
    raw: Option<&serde_json::Value>,
    current: u32,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<u32, AppError> {
    let Some(raw) = raw else { return Ok(current) };
    raw.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| range.contains(n)).ok_or_else(|| {
        AppError::bad_request(
            field,
            format!("{field}: must be an integer from {} to {}", range.start(), range.end()),
        )
    })
}

impl Policy {
    fn from_record(record: Option<PolicyRecord>) -> Self {
        record.map_or_else(Self::default, |r| Self {
            outbox_days: r.outbox_days,
            payment_events_days: r.payment_events_days,
            audit_days: r.audit_days,
        })
    }

    fn apply(self, change: &PolicyChange) -> Result<Self, AppError> {
        Ok(Self {
            outbox_days: days("outbox_days", change.outbox_days.as_ref(), self.outbox_days, &OUTBOX_DAYS)?,
            payment_events_days: days(
                "payment_events_days",
                change.payment_events_days.as_ref(),
                self.payment_events_days,
                &PAYMENT_EVENTS_DAYS,
            )?,
            audit_days: days("audit_days", change.audit_days.as_ref(), self.audit_days, &AUDIT_DAYS)?,
        })
    }

    fn keep_seconds(&self, kind: RecordKind) -> Option<i64> {
        match kind {
            RecordKind::Session | RecordKind::Idempotency => None,
            RecordKind::Outbox => Some(i64::from(self.outbox_days) * DAY),
            RecordKind::PaymentEvent => Some(i64::from(self.payment_events_days) * DAY),
        }
    }
}

/// A tenant's policy (the defaults when none was set).
pub async fn policy(app: &App, tenant: &TenantId) -> Result<Policy, AppError> {
    let stored = store::policy(&app.clients.dynamodb, &app.config.table_name, tenant.as_str()).await?;
    Ok(Policy::from_record(stored))
}

/// The operator's `set_retention`: changes a tenant's policy, with the
/// event `tenant.retention_changed`. The tenant must be active.
pub async fn set_policy(
    app: &App,
    correlation_id: &str,
    tenant: &TenantId,
    change: &PolicyChange,
) -> Result<Policy, AppError> {
    let policy = policy(app, tenant).await?.apply(change)?;
    let now = app.now();
    let table = &app.config.table_name;
    let record = PolicyRecord {
        tenant_id: tenant.to_string(),
        outbox_days: policy.outbox_days,
        payment_events_days: policy.payment_events_days,
        audit_days: policy.audit_days,
        updated_at: rfc3339(now),
    };
    let event = OutboxEvent::new(
        tenant,
        "tenant",
        tenant.as_str(),
        "tenant.retention_changed",
        now,
        correlation_id,
        json!({
            "tenant_id": tenant.as_str(),
            "outbox_days": policy.outbox_days,
            "payment_events_days": policy.payment_events_days,
            "audit_days": policy.audit_days,
        }),
    )
    .by(&crate::auth::principal::Actor::operator());
    Tx::new(table, &event)?
        .push(store::put_policy(table, &record)?)
        .push(crate::store::tenants::require_active_as(table, PrivacyLabel::Tenant, tenant.as_str())?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| {
            if error.failed(PrivacyLabel::Tenant).is_some() {
                AppError::NotFound("active tenant")
            } else {
                error.into_app_error()
            }
        })?;
    tracing::info!(tenant = %tenant, ?policy, "retention policy changed");
    Ok(policy)
}

/// What a retention run deleted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    /// Records deleted, by kind.
    pub deleted: BTreeMap<String, u64>,
    /// Per tenant: the audit entries deleted and the checkpoint they now start from.
    pub audit: Vec<AuditRetention>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRetention {
    pub tenant_id: String,
    pub entries_deleted: u64,
    /// The signed checkpoint the chain now starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_after_seq: Option<u64>,
    /// Why nothing was deleted although entries are past retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<&'static str>,
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Session => "sessions",
        RecordKind::Idempotency => "idempotency_records",
        RecordKind::Outbox => "outbox_items",
        RecordKind::PaymentEvent => "payment_events",
    }
}

/// Whether a candidate is past its tenant's retention at `now`.
fn expired(candidate: &Candidate, policy: &Policy, now: i64) -> bool {
    match (&candidate.since, policy.keep_seconds(candidate.kind)) {
        (Since::Expiry(at), _) => *at < now,
        (Since::Time(at), Some(keep)) => {
            crate::clock::parse_rfc3339(at).is_some_and(|at| at.unix_timestamp().saturating_add(keep) < now)
        }
        (Since::Time(_), None) => false,
    }
}

/// The `retention` job: one pass over the table's expiring records, then
/// every tenant's audit chain.
#[tracing::instrument(skip_all)]
pub async fn run(app: &App) -> Result<RetentionReport, AppError> {
    let table = &app.config.table_name;
    let now = app.now().unix_timestamp();
    let mut report = RetentionReport::default();
    let mut policies: HashMap<String, Policy> = HashMap::new();
    let mut start = None;
    loop {
        let (page, next) = store::candidates(&app.clients.dynamodb, table, start).await?;
        for candidate in page {
            let policy = match policies.get(&candidate.tenant_id) {
                Some(policy) => *policy,
                None => {
                    let stored = store::policy(&app.clients.dynamodb, table, &candidate.tenant_id).await?;
                    *policies.entry(candidate.tenant_id.clone()).or_insert(Policy::from_record(stored))
                }
            };
            if expired(&candidate, &policy, now)
                && store::delete(&app.clients.dynamodb, table, &candidate, now).await?
            {
                *report.deleted.entry(kind_name(candidate.kind).to_owned()).or_default() += 1;
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    for tenant in trust::tenants(app).await? {
        let policy = match policies.get(tenant.as_str()) {
            Some(policy) => *policy,
            None => policy(app, &tenant).await?,
        };
        let cutoff = now.saturating_sub(i64::from(policy.audit_days) * DAY);
        report.audit.push(retain_audit(app, &tenant, cutoff).await?);
    }
    tracing::info!(deleted = ?report.deleted, "retention run");
    Ok(report)
}

/// Deletes `tenant`'s audit entries recorded before `cutoff` (epoch seconds)
/// up to the highest signed checkpoint whose entry is that old, oldest first;
/// nothing while the chain does not verify against its checkpoints.
async fn retain_audit(app: &App, tenant: &TenantId, cutoff: i64) -> Result<AuditRetention, AppError> {
    let mut outcome = AuditRetention {
        tenant_id: tenant.to_string(),
        entries_deleted: 0,
        starts_after_seq: None,
        held: None,
    };
    let trusted = trust::trusted(app, tenant).await?;
    let table = &app.config.table_name;
    let dynamodb = &app.clients.dynamodb;
    // The highest checkpoint whose entry was recorded before the cutoff: its
    // signed time is after the entry's recording, so a checkpoint signed
    // before the cutoff vouches for an entry recorded before it.
    let Some(through) = trusted
        .checkpoints
        .iter()
        .rev()
        .find(|c| crate::clock::parse_rfc3339(&c.time).is_some_and(|t| t.unix_timestamp() < cutoff))
    else {
        return Ok(outcome);
    };
    let oldest = crate::store::audit::oldest_seq(dynamodb, table, tenant.as_str()).await?;
    if oldest.is_none_or(|oldest| oldest > through.seq) {
        outcome.starts_after_seq = Some(through.seq);
        return Ok(outcome);
    }
    let report = trust::verify_live(app, tenant).await?;
    if !report.ok {
        outcome.held = Some("the chain does not verify against its checkpoints");
        tracing::warn!(tenant = %tenant, "audit retention held: the chain is broken");
        return Ok(outcome);
    }
    outcome.entries_deleted =
        crate::store::audit::delete_through(dynamodb, table, tenant.as_str(), through.seq).await?;
    outcome.starts_after_seq = Some(through.seq);
    tracing::info!(tenant = %tenant, through = through.seq, deleted = outcome.entries_deleted, "audit entries past retention deleted");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(value: serde_json::Value) -> PolicyChange {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn changes_are_bounded_and_named() {
        let policy = Policy::default().apply(&change(json!({"outbox_days": 7}))).unwrap();
        assert_eq!(policy, Policy { outbox_days: 7, ..Policy::default() });
        for (body, field) in [
            (json!({"outbox_days": 0}), "outbox_days"),
            (json!({"outbox_days": "7"}), "outbox_days"),
            (json!({"payment_events_days": 30}), "payment_events_days"),
            (json!({"audit_days": 1.5}), "audit_days"),
            (json!({"audit_days": 99999}), "audit_days"),
        ] {
            match Policy::default().apply(&change(body.clone())) {
                Err(AppError::BadRequest { field: Some(f), .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
