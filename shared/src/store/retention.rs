//! Retention: the per-tenant policy item, and the records the retention job
//! may delete (their keys, kinds and the time their retention counts from).
//!
//! - the policy: pk `T#<tenant>#RETENTION`, sk `POLICY` (`kind =
//!   retention_policy`): `tenant_id`, `outbox_days`, `payment_events_days`,
//!   `audit_days`, `updated_at`; absent: the defaults.
//! - the records (layouts of their own modules, read here by attribute):
//!   sessions and refresh tokens (`session`, `refresh_token`) and idempotency
//!   records (`idempotency`) until their `expires_at` (the TTL attribute);
//!   outbox items (`outbox`) from their `published_at`; payment events
//!   (`payment_event`) from their `at`.

use super::labels::PrivacyLabel;
use super::{Action, Item, Keyed, TTL_ATTRIBUTE, from_item, get, key, tenant_pk, value};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

const POLICY_KIND: &str = "retention_policy";
const POLICY_SK: &str = "POLICY";

fn policy_pk(tenant: &str) -> String {
    tenant_pk(tenant, "RETENTION")
}

/// A tenant's stored policy (days per kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub tenant_id: String,
    pub outbox_days: u32,
    pub payment_events_days: u32,
    pub audit_days: u32,
    pub updated_at: String,
}

/// The put of a tenant's policy (replacing the previous one).
pub fn put_policy(table: &str, record: &PolicyRecord) -> Result<Action<PrivacyLabel>, AppError> {
    let item = Keyed::new(policy_pk(&record.tenant_id), POLICY_SK, POLICY_KIND, record).item()?;
    Action::put(table, PrivacyLabel::Policy, item, None, Default::default())
}

/// A tenant's stored policy, if any (strongly consistent).
pub async fn policy(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Option<PolicyRecord>, AppError> {
    get(dynamodb, table, key(policy_pk(tenant), POLICY_SK)).await?.map(from_item).transpose()
}

/// The kinds of records the retention job deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A session or one of its refresh tokens, past `expires_at`.
    Session,
    /// An idempotency record, past `expires_at`.
    Idempotency,
    /// A published outbox item.
    Outbox,
    /// A payment's event (its history item).
    PaymentEvent,
}

/// When a record's retention counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Its expiry (`expires_at`, epoch seconds): kept until then.
    Expiry(i64),
    /// An RFC 3339 time: kept for the tenant's days from then.
    Time(String),
}

/// A record the retention job may delete.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub tenant_id: String,
    pub kind: RecordKind,
    pub since: Since,
    key: Item,
}

/// The tenant of a `T#<tenant>#...` key.
fn tenant_of(pk: &str) -> Option<String> {
    pk.strip_prefix("T#")?.split_once('#').map(|(tenant, _)| tenant.to_owned())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn candidate(item: Item) -> Option<Candidate> {
    let pk = text(&item, "pk")?;
    let sk = text(&item, "sk")?;
    let tenant_id = tenant_of(&pk)?;
    let (kind, since) = match text(&item, "kind")?.as_str() {
        "session" | "refresh_token" => (RecordKind::Session, Since::Expiry(number(&item, TTL_ATTRIBUTE)?)),
        "idempotency" => (RecordKind::Idempotency, Since::Expiry(number(&item, TTL_ATTRIBUTE)?)),
        "outbox" => (RecordKind::Outbox, Since::Time(text(&item, "published_at")?)),
        "payment_event" => (RecordKind::PaymentEvent, Since::Time(text(&item, "at")?)),
        _ => return None,
    };
    Some(Candidate { tenant_id, kind, since, key: key(pk, &sk) })
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// One page of the table's records the retention job looks at, and the key
/// to resume from (a full scan, read by attribute: `kind`, the keys, and the
/// time each kind's retention counts from). Unpublished outbox items have no
/// `published_at` and are never candidates.
pub async fn candidates(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    start: Option<Item>,
) -> Result<(Vec<Candidate>, Option<Item>), AppError> {
    let output = dynamodb
        .scan()
        .table_name(table)
        .filter_expression("#kind IN (:session, :token, :idem, :outbox, :event)")
        .projection_expression("pk, sk, #kind, #expires, published_at, #at")
        .expression_attribute_names("#kind", "kind")
        .expression_attribute_names("#expires", TTL_ATTRIBUTE)
        .expression_attribute_names("#at", "at")
        .expression_attribute_values(":session", AttributeValue::S("session".into()))
        .expression_attribute_values(":token", AttributeValue::S("refresh_token".into()))
        .expression_attribute_values(":idem", AttributeValue::S("idempotency".into()))
        .expression_attribute_values(":outbox", AttributeValue::S(super::outbox::KIND.into()))
        .expression_attribute_values(":event", AttributeValue::S("payment_event".into()))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("scan for retention", e))?;
    let found = output.items.unwrap_or_default().into_iter().filter_map(candidate).collect();
    Ok((found, output.last_evaluated_key))
}

/// Deletes a candidate on the condition that it is still what was read
/// (still expired; still published at that time; the same payment event).
/// `false` when the condition failed (it changed meanwhile, or is gone).
pub async fn delete(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    candidate: &Candidate,
    now: i64,
) -> Result<bool, AppError> {
    let request = dynamodb.delete_item().table_name(table).set_key(Some(candidate.key.clone()));
    let request = match (&candidate.kind, &candidate.since) {
        (_, Since::Expiry(_)) => request
            .condition_expression("#expires < :now")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", value(now)?),
        (RecordKind::Outbox, Since::Time(at)) => request
            .condition_expression("published_at = :at")
            .expression_attribute_values(":at", AttributeValue::S(at.clone())),
        (_, Since::Time(at)) => request
            .condition_expression("#at = :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", AttributeValue::S(at.clone())),
    };
    match request.send().await {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
            Ok(false)
        }
        Err(error) => Err(AppError::from_sdk("delete for retention", error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_comes_from_the_key() {
        assert_eq!(tenant_of("T#acme#OUTBOX#1").as_deref(), Some("acme"));
        assert_eq!(tenant_of("T#acme").as_deref(), None);
        assert_eq!(tenant_of("X#acme#1"), None);
    }
}
