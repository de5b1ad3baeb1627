//! Personal-data keys: one item per user, `T#<tenant>#USERKEY#<user_id>` /
//! `KEY` (kind `user_key`), holding the user's AES-256 data key wrapped by
//! the KMS DataKey under the encryption context `{tenant, user}`. Every
//! personal field of the user (their email, on the user item and the
//! directory entry) is sealed with it ([`crate::privacy::personal`]).
//! Deleting this item is the erasure: the sealed copies, wherever they are
//! (items, backups), can no longer be opened.

use super::labels::AuthLabel;
use super::{Action, Expr, Item, Keyed, from_item, get, key, put_if_absent, tenant_pk};
use crate::error::AppError;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "user_key";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKeyRecord {
    pub tenant_id: String,
    pub user_id: String,
    /// The data key as KMS encrypted it (base64).
    pub wrapped_key: String,
    pub created_at: String,
}

fn pk(tenant: &str, user_id: &str) -> String {
    tenant_pk(tenant, &format!("USERKEY#{user_id}"))
}

pub(crate) fn key_of(tenant: &str, user_id: &str) -> Item {
    key(pk(tenant, user_id), "KEY")
}

fn keyed(record: &UserKeyRecord) -> Keyed<'_, UserKeyRecord> {
    Keyed::new(pk(&record.tenant_id, &record.user_id), "KEY", KIND, record)
}

/// Stores a new user's key; fails (label `user_key`) if the user has one.
pub fn insert(table: &str, record: &UserKeyRecord) -> Result<Action<AuthLabel>, AppError> {
    keyed(record).insert(table, AuthLabel::UserKey)
}

/// Stores the key unless the user has one (`false` then: read the winner's).
/// For the migration, which gives existing users their key.
pub async fn put_new(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    record: &UserKeyRecord,
) -> Result<bool, AppError> {
    put_if_absent(dynamodb, table, keyed(record).item()?, "store a personal-data key").await
}

/// The user's key (strongly consistent); `None` once the user is erased.
pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
) -> Result<Option<UserKeyRecord>, AppError> {
    get(dynamodb, table, key_of(tenant, user_id)).await?.map(from_item).transpose()
}

/// The keys of several users of `tenant` in one round trip (BatchGetItem, at
/// most 100), in the order of `user_ids`.
pub async fn find_many(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_ids: &[&str],
) -> Result<Vec<Option<UserKeyRecord>>, AppError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys = user_ids.iter().map(|id| key_of(tenant, id)).collect();
    super::get_many(dynamodb, table, keys)
        .await?
        .into_iter()
        .map(|item| item.map(from_item).transpose())
        .collect()
}

/// Deletes the user's key (label `user_key`): the crypto-shredding of an erasure.
pub fn delete(table: &str, tenant: &str, user_id: &str) -> Result<Action<AuthLabel>, AppError> {
    Action::delete(table, AuthLabel::UserKey, key_of(tenant, user_id), None, Expr::default())
}
