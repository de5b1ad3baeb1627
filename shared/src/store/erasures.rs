//! The erasure list, in its own table (`ERASURES_TABLE`, retained, outside
//! the main table's backups and restores): one item per erased person,
//! `T#<tenant>#ERASURE` / `<user_id>` (kind `erasure`), with the date and
//! nothing else. Written in the erasure's own transaction; read in full by
//! every restore and drill, which re-apply it to the restored copy before
//! it is reported usable ([`crate::privacy::erasure`]).

use super::labels::AuthLabel;
use super::{Action, Keyed, from_item, tenant_pk};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "erasure";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub tenant_id: String,
    pub user_id: String,
    pub erased_at: String,
}

/// Records an erasure (label `erasure`; the person can be erased once).
pub fn insert(erasures_table: &str, record: &ErasureRecord) -> Result<Action<AuthLabel>, AppError> {
    Keyed::new(tenant_pk(&record.tenant_id, "ERASURE"), record.user_id.clone(), KIND, record)
        .insert(erasures_table, AuthLabel::Erasure)
}

/// Every erasure (a consistent scan of the list, all pages).
pub async fn all(
    dynamodb: &aws_sdk_dynamodb::Client,
    erasures_table: &str,
) -> Result<Vec<ErasureRecord>, AppError> {
    let items: Vec<super::Item> = dynamodb
        .scan()
        .table_name(erasures_table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("read the erasure list", e))?;
    items.into_iter().map(from_item).collect()
}

/// Deletes what `erasure` erased from `table` (a restored copy) again: the
/// key item, the directory entry and the user item it names. `true` when
/// any of them was there.
pub async fn reapply_one(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    erasure: &ErasureRecord,
) -> Result<bool, AppError> {
    let (tenant, user_id) = (erasure.tenant_id.as_str(), erasure.user_id.as_str());
    let member = super::members::find(dynamodb, table, tenant, user_id).await?;
    let mut keys = vec![super::user_keys::key_of(tenant, user_id)];
    if let Some(member) = &member {
        keys.push(super::members::member_key(tenant, user_id));
        if let Some(user) = super::users::find_for_member(dynamodb, table, member).await? {
            keys.push(user.key());
        }
    }
    let mut removed = false;
    for key in keys {
        let old = dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("re-apply an erasure", e))?;
        removed |= old.attributes.is_some();
    }
    Ok(removed)
}
