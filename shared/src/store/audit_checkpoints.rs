//! Signed audit checkpoints, in their own table (`AuditCheckpointTable`,
//! not the main table: only the checkpoint writers may put items there, and
//! its resource policy denies every update and delete). Per tenant:
//!
//! - pk `T#<tenant>#CHECKPOINT`, sk `C#<seq, 20 digits>` (`kind =
//!   audit_checkpoint`): `tenant_id`, `seq`, `head_hash`, `time`, `key_id`,
//!   `signature` ([`crate::audit::checkpoint::SignedCheckpoint`]), put with
//!   `attribute_not_exists(pk)`: a checkpoint is written once.

use super::labels::AuditLabel;
use super::{Action, Keyed, from_item, tenant_pk};
use crate::audit::checkpoint::SignedCheckpoint;
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;

const KIND: &str = "audit_checkpoint";
const SCHEMA_VERSION: u32 = 1;
const SEQ_DIGITS: usize = 20;

fn checkpoints_pk(tenant: &str) -> String {
    tenant_pk(tenant, "CHECKPOINT")
}

fn checkpoint_sk(seq: u64) -> String {
    format!("C#{seq:0SEQ_DIGITS$}")
}

/// The put of a new checkpoint (fails with [`AuditLabel::Checkpoint`] when
/// one exists at its seq).
pub fn insert(table: &str, checkpoint: &SignedCheckpoint) -> Result<Action<AuditLabel>, AppError> {
    Keyed::new(checkpoints_pk(&checkpoint.tenant_id), checkpoint_sk(checkpoint.seq), KIND, checkpoint)
        .version(SCHEMA_VERSION)
        .insert(table, AuditLabel::Checkpoint)
}

/// Every checkpoint of `tenant`, in seq order (strongly consistent, all
/// pages). A stored item whose key does not match its content (a checkpoint
/// moved to another seq or tenant) is returned as stored: its signature
/// covers the content, and the verifier compares the two.
pub async fn list(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Result<Vec<StoredCheckpoint>, AppError> {
    let items: Vec<_> = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(checkpoints_pk(tenant)))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("query audit checkpoints", e))?;
    items
        .into_iter()
        .map(|item| {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let checkpoint: SignedCheckpoint = from_item(item)?;
            let in_place = sk == checkpoint_sk(checkpoint.seq) && checkpoint.tenant_id == tenant;
            Ok(StoredCheckpoint { checkpoint, in_place })
        })
        .collect()
}

/// Every tenant with a checkpoint (a full scan: for the verify job).
pub async fn tenants(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<String>, AppError> {
    super::tenants_with(dynamodb, table, KIND).await
}

/// A stored checkpoint, and whether it is stored under its own tenant and seq.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub checkpoint: SignedCheckpoint,
    pub in_place: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_sort_by_seq() {
        assert!(checkpoint_sk(9) < checkpoint_sk(10));
        assert_eq!(checkpoint_sk(1).len(), 2 + SEQ_DIGITS);
    }
}
