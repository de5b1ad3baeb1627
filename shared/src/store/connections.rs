//! WebSocket connections: one item per live connection, written by `$connect`
//! and deleted by `$disconnect`.
//!
//! - pk `T#_system#WSCONN#<connection id>`, sk `WSCONN` (`kind = connection`):
//!   `connection_id`, `tenant_id`, `user_id`, `connected_at`, `claims` (the
//!   access token's verified claims at `$connect`, so later messages of the
//!   connection act as that principal), `expires_at` (the TTL: API Gateway
//!   closes a connection after two hours, so an item `$disconnect` never
//!   deleted goes then, and is ignored once expired). API Gateway names a
//!   connection by its id alone, so the item lives under the platform's
//!   reserved tenant and names its tenant inside.
//! - listed in `gsi1` under `T#<tenant>#CONNS#<user id>` (sorted by connection
//!   id): a user's live connections, for delivery and presence.

use super::{Keyed, from_item, key, tenant_pk};
use crate::auth::jwt::AccessClaims;
use crate::error::AppError;
use crate::store::migrations::SYSTEM_TENANT;
use serde::{Deserialize, Serialize};

const KIND: &str = "connection";
const SK: &str = "WSCONN";
const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub connection_id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub connected_at: String,
    pub claims: AccessClaims,
    /// Epoch seconds; the TTL attribute, also checked in code.
    pub expires_at: i64,
}

fn connection_pk(connection_id: &str) -> String {
    tenant_pk(SYSTEM_TENANT, &format!("WSCONN#{connection_id}"))
}

fn user_connections(tenant: &str, user_id: &str) -> String {
    tenant_pk(tenant, &format!("CONNS#{user_id}"))
}

/// Records a live connection (one PutItem; a reconnect with the same id replaces it).
pub async fn put(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    record: &ConnectionRecord,
) -> Result<(), AppError> {
    let item = Keyed::new(connection_pk(&record.connection_id), SK, KIND, record)
        .indexed(user_connections(&record.tenant_id, &record.user_id), record.connection_id.clone())
        .version(SCHEMA_VERSION)
        .item()?;
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| AppError::from_sdk("record connection", e))?;
    Ok(())
}

/// The connection `connection_id`, if it is recorded and has not expired
/// (`now`, epoch seconds; one consistent GetItem).
pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    connection_id: &str,
    now: i64,
) -> Result<Option<ConnectionRecord>, AppError> {
    let item = super::get(dynamodb, table, key(connection_pk(connection_id), SK)).await?;
    let record: Option<ConnectionRecord> = item.map(from_item).transpose()?;
    Ok(record.filter(|r| r.expires_at > now))
}

/// Forgets a connection (one DeleteItem; nothing if it is not recorded).
pub async fn delete(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    connection_id: &str,
) -> Result<(), AppError> {
    dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(key(connection_pk(connection_id), SK)))
        .send()
        .await
        .map_err(|e| AppError::from_sdk("forget connection", e))?;
    Ok(())
}

/// The ids of `user_id`'s live connections (recorded, not expired at `now`):
/// one Query of their `gsi1` listing (all pages; an index read, so eventually
/// consistent), ids only.
pub async fn live_ids(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, AppError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let items: Vec<super::Item> = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :user")
        .filter_expression("expires_at > :now")
        .projection_expression("connection_id")
        .expression_attribute_values(":user", AttributeValue::S(user_connections(tenant, user_id)))
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("list connections", e))?;
    Ok(items
        .into_iter()
        .filter_map(|mut item| item.remove("connection_id").and_then(|v| v.as_s().ok().cloned()))
        .collect())
}
