//! The data items a run reads: one page of a parallel-scan segment at a
//! time. The page boundary is the run's resume checkpoint
//! `(segment, LastEvaluatedKey)`, so this is an explicit cursor, not a paginator.

use super::s;
use crate::error::AppError;
use crate::store::{Item, get};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

/// One page of a segment scan.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Item>,
    /// LastEvaluatedKey; `None` when the segment is exhausted.
    pub cursor: Option<BTreeMap<String, String>>,
}

fn cursor_to_key(cursor: &BTreeMap<String, String>) -> Item {
    cursor.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect()
}

fn key_to_cursor(key: Item) -> Result<BTreeMap<String, String>, AppError> {
    key.into_iter()
        .map(|(name, value)| match value {
            AttributeValue::S(text) => Ok((name, text)),
            _ => Err(AppError::Internal(format!("scan cursor attribute {name} is not a string"))),
        })
        .collect()
}

/// One page (at most `limit` items evaluated) of segment `segment` of a
/// parallel scan, strongly consistent, returning only items of `kinds`.
pub async fn scan_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    total_segments: u32,
    cursor: Option<&BTreeMap<String, String>>,
    limit: i32,
    kinds: &[&str],
) -> Result<Page, AppError> {
    let segment = i32::try_from(segment).map_err(|e| AppError::internal("segment", e))?;
    let total = i32::try_from(total_segments).map_err(|e| AppError::internal("total segments", e))?;
    let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!(":k{i}")).collect();
    let mut request = dynamodb
        .scan()
        .table_name(table)
        .segment(segment)
        .total_segments(total)
        .limit(limit)
        .consistent_read(true)
        .set_exclusive_start_key(cursor.map(cursor_to_key))
        .filter_expression(format!("#kind IN ({})", placeholders.join(", ")))
        .expression_attribute_names("#kind", "kind");
    for (placeholder, kind) in placeholders.iter().zip(kinds) {
        request = request.expression_attribute_values(placeholder, s(*kind));
    }
    let output = request.send().await.map_err(|e| AppError::from_sdk("scan segment", e))?;
    Ok(Page {
        items: output.items.unwrap_or_default(),
        cursor: output.last_evaluated_key.map(key_to_cursor).transpose()?,
    })
}

/// The primary key of an item, and its `pk` text for reports.
pub fn item_key(item: &Item) -> Result<(Item, String), AppError> {
    match (item.get("pk"), item.get("sk")) {
        (Some(pk @ AttributeValue::S(text)), Some(sk @ AttributeValue::S(_))) => {
            let key: Item = HashMap::from([("pk".to_owned(), pk.clone()), ("sk".to_owned(), sk.clone())]);
            Ok((key, text.clone()))
        }
        _ => Err(AppError::Internal("item without string pk/sk".into())),
    }
}

pub async fn read_item(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, AppError> {
    get(dynamodb, table, key).await
}
