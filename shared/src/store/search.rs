//! The search index's items (the engine of [`crate::search`]). Nothing in
//! them is plaintext: every term is a keyed hash
//! ([`crate::privacy::lookup::LookupKey::search_term`]).
//!
//! - Postings (`kind = search_token`): one item per term and document,
//!   pk `T#<tenant>#SRCH#<scope>#<term hash>` (32 hex: the hash's first 128
//!   bits), sk the document: a message's id (UUIDv7, so a Query newest
//!   first is a reverse scan) or a user's id. Attributes: the document's ids
//!   (`conversation_id` and `seq`, or `user_id`) and `terms`, every term of
//!   the document as a short hash between spaces (` 1a2b3c4d 5e6f7a8b `), so a
//!   query of several terms reads one term's postings and keeps, with a
//!   `contains` filter, those that have the others.
//! - Documents (`kind = search_doc`): one per indexed document,
//!   pk `T#<tenant>#SRCHDOC#<scope>#<document>` / `D`, the term hashes its
//!   postings are under (what a re-index or a removal deletes).

use super::{Item, Keyed, from_item, key, tenant_pk};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const TOKEN_KIND: &str = "search_token";
const DOC_KIND: &str = "search_doc";
const DOC_SK: &str = "D";
/// DynamoDB's limit on the writes of one BatchWriteItem.
const MAX_BATCH_WRITES: usize = 25;
const BATCH_ATTEMPTS: u32 = 5;

/// What is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Message texts, by whole token.
    Messages,
    /// Display names in the tenant's directory, by token prefix.
    People,
}

impl Scope {
    pub fn code(self) -> &'static str {
        match self {
            Scope::Messages => "MSG",
            Scope::People => "PPL",
        }
    }
}

/// One posting: a term of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingRecord {
    pub tenant_id: String,
    /// The sort key: a message id or a user id.
    pub doc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Every term of the document, short hashes between spaces.
    pub terms: String,
}

/// What one document is indexed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    pub tenant_id: String,
    /// The postings' sort key.
    pub doc: String,
    /// The term hashes (32 hex) of its postings.
    pub terms: Vec<String>,
    pub indexed_at: String,
}

fn posting_pk(tenant: &str, scope: Scope, term: &str) -> String {
    tenant_pk(tenant, &format!("SRCH#{}#{term}", scope.code()))
}

/// The document name of a message (its place in its conversation).
pub fn message_doc(conversation_id: &str, seq: u64) -> String {
    format!("M#{conversation_id}#{seq}")
}

/// The document name of a person.
pub fn person_doc(user_id: &str) -> String {
    format!("U#{user_id}")
}

pub fn doc_key(tenant: &str, scope: Scope, name: &str) -> Item {
    key(tenant_pk(tenant, &format!("SRCHDOC#{}#{name}", scope.code())), DOC_SK)
}

pub fn decode_doc(item: Item) -> Result<DocRecord, AppError> {
    from_item(item)
}

pub fn doc_item(scope: Scope, name: &str, record: &DocRecord) -> Result<Item, AppError> {
    let pk = tenant_pk(&record.tenant_id, &format!("SRCHDOC#{}#{name}", scope.code()));
    Keyed::new(pk, DOC_SK, DOC_KIND, record).item()
}

pub fn posting_item(scope: Scope, term: &str, record: &PostingRecord) -> Result<Item, AppError> {
    Keyed::new(posting_pk(&record.tenant_id, scope, term), record.doc.clone(), TOKEN_KIND, record).item()
}

pub fn posting_key(tenant: &str, scope: Scope, term: &str, doc: &str) -> Item {
    key(posting_pk(tenant, scope, term), doc)
}

/// Puts and deletes, 25 to a BatchWriteItem, unprocessed writes sent again
/// (bounded, with backoff); an error if some never went through (the
/// indexer's message is then retried: every write is idempotent).
pub async fn write(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    puts: Vec<Item>,
    deletes: Vec<Item>,
) -> Result<(), AppError> {
    let mut requests = Vec::with_capacity(puts.len() + deletes.len());
    for item in puts {
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .map_err(|e| AppError::internal("build put request", e))?;
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    for key in deletes {
        let delete = DeleteRequest::builder()
            .set_key(Some(key))
            .build()
            .map_err(|e| AppError::internal("build delete request", e))?;
        requests.push(WriteRequest::builder().delete_request(delete).build());
    }
    for chunk in requests.chunks(MAX_BATCH_WRITES) {
        let mut pending = chunk.to_vec();
        for attempt in 1..=BATCH_ATTEMPTS {
            let output = dynamodb
                .batch_write_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .map_err(|e| AppError::from_sdk("write the search index", e))?;
            pending = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if attempt == BATCH_ATTEMPTS {
                return Err(AppError::Unavailable("search index writes left unprocessed".into()));
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
    }
    Ok(())
}

/// One page of a term's postings that also have every `also` term (a
/// `contains` filter on `terms`), newest document first when `newest_first`
/// (message ids), else in document order, after the document `after`.
/// Eventually consistent (the index is derived data; hits are checked
/// against the items themselves). Returns the postings and the document
/// to continue after, when DynamoDB stopped before the end.
#[allow(clippy::too_many_arguments)]
pub async fn postings_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    scope: Scope,
    term: &str,
    also: &[String],
    after: Option<&str>,
    newest_first: bool,
    limit: i32,
) -> Result<(Vec<PostingRecord>, Option<String>), AppError> {
    let pk = posting_pk(tenant, scope, term);
    let mut query = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .scan_index_forward(!newest_first)
        .limit(limit);
    if !also.is_empty() {
        let mut conditions = Vec::new();
        for (n, short) in also.iter().enumerate() {
            let placeholder = format!(":t{n}");
            conditions.push(format!("contains(terms, {placeholder})"));
            query = query.expression_attribute_values(placeholder, AttributeValue::S(format!(" {short} ")));
        }
        query = query.filter_expression(conditions.join(" AND "));
    }
    if let Some(after) = after {
        query = query.set_exclusive_start_key(Some(key(pk, after)));
    }
    let output = query.send().await.map_err(|e| AppError::from_sdk("search the index", e))?;
    let postings: Vec<PostingRecord> =
        output.items.unwrap_or_default().into_iter().map(from_item).collect::<Result<_, _>>()?;
    let next = output.last_evaluated_key.and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned());
    Ok((postings, next))
}
