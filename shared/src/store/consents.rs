//! Consent records: an append-only history per user.
//!
//! - pk `T#<tenant>#CONSENTS#<user id>`, sk `C#<consent id>` (UUIDv7, so
//!   sorted by time; `kind = consent`): `consent_id`, `user_id`, `purpose`,
//!   `version`, `granted`, `recorded_at`. Inserted with
//!   `attribute_not_exists(pk)` and never updated: a change of mind is a new
//!   record, the newest of a purpose is its current state.

use super::labels::PrivacyLabel;
use super::{Action, Keyed, from_item, key, tenant_pk};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

const KIND: &str = "consent";
const SCHEMA_VERSION: u32 = 1;
const SK_PREFIX: &str = "C#";

fn history_pk(tenant: &str, user_id: &str) -> String {
    tenant_pk(tenant, &format!("CONSENTS#{user_id}"))
}

/// One consent decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub tenant_id: String,
    pub user_id: String,
    pub consent_id: String,
    pub purpose: String,
    pub version: String,
    pub granted: bool,
    pub recorded_at: String,
}

/// The put of a new record (label `consent`).
pub fn insert(table: &str, record: &ConsentRecord) -> Result<Action<PrivacyLabel>, AppError> {
    Keyed::new(
        history_pk(&record.tenant_id, &record.user_id),
        format!("{SK_PREFIX}{}", record.consent_id),
        KIND,
        record,
    )
    .version(SCHEMA_VERSION)
    .insert(table, PrivacyLabel::Consent)
}

/// One page of a user's history, newest first (strongly consistent), and the
/// cursor of the next page (the last record's id) when there may be more.
pub async fn page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
    limit: i32,
    before: Option<&str>,
) -> Result<(Vec<ConsentRecord>, Option<String>), AppError> {
    let pk = history_pk(tenant, user_id);
    let start = before.map(|id| key(pk.clone(), &format!("{SK_PREFIX}{id}")));
    let output = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .expression_attribute_values(":prefix", AttributeValue::S(SK_PREFIX.to_owned()))
        .scan_index_forward(false)
        .set_exclusive_start_key(start)
        .consistent_read(true)
        .limit(limit)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list consents", e))?;
    let records: Vec<ConsentRecord> =
        output.items.unwrap_or_default().into_iter().map(from_item).collect::<Result<_, _>>()?;
    let next = output.last_evaluated_key.and(records.last().map(|r| r.consent_id.clone()));
    Ok((records, next))
}
