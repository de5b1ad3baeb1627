//! The lease lock: one conditional put with owner and expiry, so two runs
//! never overlap; renewed every page, released by the run that holds it.

use super::{LOCK_KIND, is_condition_failure, lock_key, lock_pk, n, s};
use crate::error::AppError;
use crate::store::{Item, from_item, get, to_item};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

/// Who holds the migration lock and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The run id of the holder.
    pub owner: String,
    pub lease_expires_at_ms: i64,
    pub acquired_at: String,
}

#[derive(Serialize, Deserialize)]
struct LockItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Taken; `expired` is the lease this one replaced, if any.
    Acquired { expired: Option<Lease> },
    /// Someone else holds an unexpired lease.
    Held(Lease),
}

fn decode_lease(item: Item) -> Result<Lease, AppError> {
    Ok(from_item::<LockItem>(item)?.lease)
}

/// One conditional put: succeeds when there is no lock or its lease has expired.
pub async fn acquire_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    lease: &Lease,
    now_ms: i64,
) -> Result<Acquire, AppError> {
    let (pk, sk) = (lock_pk(), "LOCK".to_owned());
    let item =
        to_item(&LockItem { pk, sk, kind: LOCK_KIND.into(), schema_version: 1, lease: lease.clone() })?;
    let result = dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR lease_expires_at_ms < :now")
        .expression_attribute_values(":now", n(now_ms))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(output) => {
            let expired = output.attributes.filter(|a| !a.is_empty()).map(decode_lease).transpose()?;
            Ok(Acquire::Acquired { expired })
        }
        Err(error) if is_condition_failure(&error) => {
            let old = match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                _ => None,
            };
            held_by(dynamodb, table, old).await
        }
        Err(error) => Err(AppError::from_sdk("acquire migration lock", error)),
    }
}

/// The holder of a lock our put found taken: from the failed condition's old
/// item, else read back.
async fn held_by(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    old: Option<Item>,
) -> Result<Acquire, AppError> {
    let old = match old {
        Some(item) => Some(item),
        None => get(dynamodb, table, lock_key()).await?,
    };
    match old {
        Some(item) => Ok(Acquire::Held(decode_lease(item)?)),
        // Released between our put and our read: the caller may retry.
        None => Err(AppError::Unavailable("the migration lock changed hands; retry".into())),
    }
}

/// Extends the lease; `false` when `owner` no longer holds the lock.
pub async fn renew_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    owner: &str,
    expires_at_ms: i64,
) -> Result<bool, AppError> {
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(lock_key()))
        .update_expression("SET lease_expires_at_ms = :expires")
        .condition_expression("#owner = :owner")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":expires", n(expires_at_ms))
        .expression_attribute_values(":owner", s(owner))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("renew migration lock", error)),
    }
}

/// Deletes the lock if `owner` holds it; `false` when it did not.
pub async fn release_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    owner: &str,
) -> Result<bool, AppError> {
    let result = dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(lock_key()))
        .condition_expression("#owner = :owner")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":owner", s(owner))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("release migration lock", error)),
    }
}

pub async fn read_lock(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Option<Lease>, AppError> {
    get(dynamodb, table, lock_key()).await?.map(decode_lease).transpose()
}
