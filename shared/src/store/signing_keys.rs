//! The record of signing-key rotations: one platform item
//! (`T#_system#SIGNING_KEYS`) naming the current and the previous key and
//! when the last rotation happened, so `retire` can tell when the previous
//! key's last token has expired. The keys themselves are found through KMS
//! aliases (see `crate::auth::keys`); only the rotation job reads this.

use super::migrations::SYSTEM_TENANT;
use super::{Item, from_item, get, key, tenant_pk, to_item};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

const SORT_KEY: &str = "SIGNING_KEYS";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    pub current: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Epoch seconds of the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<i64>,
    /// Keys retired so far, oldest first.
    #[serde(default)]
    pub retired: Vec<String>,
}

fn record_key() -> Item {
    key(tenant_pk(SYSTEM_TENANT, SORT_KEY), SORT_KEY)
}

pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<RotationRecord>, AppError> {
    get(dynamodb, table, record_key()).await?.map(from_item).transpose()
}

/// Stores the record (the rotation job is the only writer; the operator runs one at a time).
pub async fn put(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    record: &RotationRecord,
) -> Result<(), AppError> {
    let mut item = to_item(record)?;
    item.extend(record_key());
    item.insert("kind".into(), aws_sdk_dynamodb::types::AttributeValue::S("signing_keys".into()));
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| AppError::from_sdk("store the signing-key record", e))?;
    Ok(())
}
