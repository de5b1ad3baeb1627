//! The store: the only code that knows item layouts, key formats and
//! DynamoDB expressions. Services get typed records and [`Action`]s to put in
//! the one transaction builder, [`tx::Tx`].
//!
//! Single-table design: `pk`/`sk` generic keys, every `pk` starting with
//! `T#<tenant>#`; `gsi1` for alternate lookups within a tenant; `gsi2` a sparse
//! index of unpublished outbox items; `expires_at` the TTL attribute; `kind`
//! names the item type (the stream filter matches on it); `schema_version`
//! versions the layout for migrations.
//!
//! Layout changes are the store's too: [`user_layouts`] and
//! [`account_layouts`] hold the reversible changes between the shipped user
//! and account layouts, [`migrations`] the types that
//! describe one item's change and the conditional write that applies it (the
//! `migrate` service only orders them by version and drives the runs).
//!
//! Reads that want every page use the SDK's paginators; a page function with
//! an explicit cursor is kept where a page boundary is a resume checkpoint or
//! an API cursor (each says so).

pub mod account_layouts;
pub mod audit;
pub mod audit_checkpoints;
pub mod census;
pub mod chat;
pub mod clients;
pub mod connections;
pub mod consents;
pub mod devices;
pub mod erasures;
pub mod idempotency;
pub mod invitations;
pub mod labels;
pub mod ledger;
pub mod media;
pub mod members;
pub mod mfa;
pub mod migrations;
pub mod outbox;
pub mod payments;
pub mod ratelimits;
pub mod retention;
pub mod search;
pub mod sessions;
pub mod signing_keys;
pub mod tenants;
pub mod tx;
pub mod user_keys;
pub mod user_layouts;
pub mod users;

use crate::error::AppError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, StreamViewType,
    TransactWriteItem, Update,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// The TTL attribute name. template.yaml declares the same on the table
/// (`TimeToLiveSpecification`); a test holds the two together, and a restore
/// re-applies it from here.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The table stream's view type: the stream consumers read new and old
/// images. template.yaml declares the same (`StreamSpecification`); a test
/// holds the two together, and a restore re-applies it from here.
pub const STREAM_VIEW: StreamViewType = StreamViewType::NewAndOldImages;

pub(crate) fn tenant_pk(tenant: &str, rest: &str) -> String {
    format!("T#{tenant}#{rest}")
}

pub(crate) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub(crate) fn to_item<T: Serialize>(record: &T) -> Result<Item, AppError> {
    serde_dynamo::to_item(record).map_err(|e| AppError::internal("encode item", e))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, AppError> {
    serde_dynamo::from_item(item).map_err(|e| AppError::internal("decode item", e))
}

pub(crate) fn value<T: Serialize>(value: T) -> Result<AttributeValue, AppError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| AppError::internal("encode value", e))
}

/// An item as stored: its keys, its type (`kind`), its layout version, and the
/// record's own attributes flattened beside them. Every layout is built with it.
#[derive(Debug, Serialize)]
pub(crate) struct Keyed<'a, T> {
    pk: String,
    sk: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    schema_version: u32,
    #[serde(flatten)]
    record: &'a T,
}

impl<'a, T: Serialize> Keyed<'a, T> {
    pub fn new(pk: String, sk: impl Into<String>, kind: &'static str, record: &'a T) -> Self {
        Self {
            pk,
            sk: sk.into(),
            kind,
            gsi1pk: None,
            gsi1sk: None,
            gsi2pk: None,
            gsi2sk: None,
            schema_version: 1,
            record,
        }
    }

    /// Also listed in `gsi1` under `gsi1pk`, sorted by `gsi1sk`.
    pub fn indexed(mut self, gsi1pk: String, gsi1sk: impl Into<String>) -> Self {
        self.gsi1pk = Some(gsi1pk);
        self.gsi1sk = Some(gsi1sk.into());
        self
    }

    /// Also in the sparse `gsi2` under `gsi2pk`, sorted by `gsi2sk`, while the
    /// item carries them (a later write without them takes it out).
    pub fn sparse(mut self, gsi2pk: String, gsi2sk: String) -> Self {
        self.gsi2pk = Some(gsi2pk);
        self.gsi2sk = Some(gsi2sk);
        self
    }

    pub fn version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    pub fn item(&self) -> Result<Item, AppError> {
        to_item(self)
    }

    /// A put that fails (with `label`) if the item already exists.
    pub fn insert<L>(&self, table: &str, label: L) -> Result<Action<L>, AppError> {
        Action::put(table, label, self.item()?, Some("attribute_not_exists(pk)"), Expr::default())
    }
}

/// One write inside a transaction, labelled (with its transaction's label
/// enum, see [`labels`]) so a cancellation reason can be traced back to the
/// action that caused it.
#[derive(Debug, Clone)]
pub struct Action<L> {
    pub label: L,
    pub(crate) write: TransactWriteItem,
}

/// Expression values and names for an update or condition.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expr {
    pub names: HashMap<String, String>,
    pub values: Item,
}

impl Expr {
    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }
}

impl<L> Action<L> {
    pub(crate) fn put(
        table: &str,
        label: L,
        item: Item,
        condition: Option<&str>,
        expr: Expr,
    ) -> Result<Self, AppError> {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(non_empty(expr.names))
            .set_expression_attribute_values(non_empty(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AppError::internal("build put", e))?;
        Ok(Self { label, write: TransactWriteItem::builder().put(put).build() })
    }

    pub(crate) fn update(
        table: &str,
        label: L,
        key: Item,
        update_expression: &str,
        condition: Option<&str>,
        expr: Expr,
    ) -> Result<Self, AppError> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update_expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(non_empty(expr.names))
            .set_expression_attribute_values(non_empty(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AppError::internal("build update", e))?;
        Ok(Self { label, write: TransactWriteItem::builder().update(update).build() })
    }

    /// Deletes the item at `key` if `condition` holds.
    pub(crate) fn delete(
        table: &str,
        label: L,
        key: Item,
        condition: Option<&str>,
        expr: Expr,
    ) -> Result<Self, AppError> {
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(non_empty(expr.names))
            .set_expression_attribute_values(non_empty(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AppError::internal("build delete", e))?;
        Ok(Self { label, write: TransactWriteItem::builder().delete(delete).build() })
    }

    /// A condition on an item the transaction does not change (e.g. "the
    /// tenant is active"): it rides in the same round trip as the writes.
    pub(crate) fn condition_check(
        table: &str,
        label: L,
        key: Item,
        condition: &str,
        expr: Expr,
    ) -> Result<Self, AppError> {
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(non_empty(expr.names))
            .set_expression_attribute_values(non_empty(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AppError::internal("build condition check", e))?;
        Ok(Self { label, write: TransactWriteItem::builder().condition_check(check).build() })
    }
}

fn non_empty<K, V>(map: HashMap<K, V>) -> Option<HashMap<K, V>> {
    if map.is_empty() { None } else { Some(map) }
}

/// A strongly consistent read of one item.
/// Writes `item` unless an item with its key exists (then nothing, `false`):
/// for records written once (derived data, history).
pub(crate) async fn put_if_absent(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
    what: &'static str,
) -> Result<bool, AppError> {
    let result = dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
            Ok(false)
        }
        Err(error) => Err(AppError::from_sdk(what, error)),
    }
}

pub(crate) async fn get(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, AppError> {
    let output = dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("read item", e))?;
    Ok(output.item)
}

/// Strongly consistent reads of several items in one round trip (BatchGetItem),
/// answered in the order of `keys`. Unprocessed keys (throttling) are re-read.
pub(crate) async fn get_many(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Option<Item>>, AppError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found: Vec<Item> = Vec::new();
    let mut pending = keys.clone();
    for _ in 0..5 {
        if pending.is_empty() {
            break;
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending))
            .consistent_read(true)
            .build()
            .map_err(|e| AppError::internal("build batch read", e))?;
        let output = dynamodb
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("batch read", e))?;
        found.extend(output.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
        pending =
            output.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys).unwrap_or_default();
    }
    if !pending.is_empty() {
        return Err(AppError::Unavailable("batch read throttled".into()));
    }
    Ok(keys
        .iter()
        .map(|wanted| {
            found
                .iter()
                .find(|item| item.get("pk") == wanted.get("pk") && item.get("sk") == wanted.get("sk"))
                .cloned()
        })
        .collect())
}

/// Every item of one partition (all pages).
pub(crate) async fn query_all(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    consistent: bool,
) -> Result<Vec<Item>, AppError> {
    dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .consistent_read(consistent)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("query partition", e))
}

/// Every item of one partition whose sort key starts with `sk_prefix` (all
/// pages, strongly consistent); `what` names the read in errors.
pub(crate) async fn query_prefix(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk_prefix: &str,
    what: &'static str,
) -> Result<Vec<Item>, AppError> {
    dynamodb
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk(what, e))
}

/// Every tenant that has items of `kind` (a full, consistent scan: for the
/// verify job and restore drills, never for a request).
pub async fn tenants_with(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    kind: &str,
) -> Result<Vec<String>, AppError> {
    let items = dynamodb
        .scan()
        .table_name(table)
        .filter_expression("kind = :kind")
        .expression_attribute_values(":kind", AttributeValue::S(kind.to_owned()))
        .projection_expression("tenant_id")
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("scan tenants", e))?;
    let tenants: std::collections::BTreeSet<String> =
        items.iter().filter_map(|i| i.get("tenant_id")?.as_s().ok().cloned()).collect();
    Ok(tenants.into_iter().collect())
}
