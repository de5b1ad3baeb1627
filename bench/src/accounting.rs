//! Request units of one operation, from what it sent and what it changed:
//! every item a request wrote or read, with its size and units by the rules
//! of [`crate::capacity`]. A write's size is the larger of the item before and
//! after, taken from the stream record it caused; an item a write left as it
//! was (a condition check, an unchanged put) streams nothing, so its size is
//! the item as read right after the operation.

use crate::capacity::{Index, item_size, read_units, write_units};
use crate::recorder::{Change, Exchange};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};

/// One item one request wrote or read.
#[derive(Debug, Clone)]
pub struct Access {
    /// The API call: `TransactWriteItems`, `GetItem`, ...
    pub call: String,
    /// `Put`, `Update`, `Delete`, `ConditionCheck`, `Get`, `Query`.
    pub action: &'static str,
    /// The item's `kind` attribute (what it is), or `missing`.
    pub kind: String,
    /// The bytes the charge is computed from.
    pub bytes: usize,
    pub wru: f64,
    pub index_wru: f64,
    pub rru: f64,
    /// Copies of the tenant id in the item (keys `T#<tenant>#...` and values
    /// equal to it): how its size grows with a longer tenant id.
    pub tenant_copies: usize,
}

/// Copies of `tenant` in an item's values (DynamoDB JSON, any depth).
fn tenant_copies(value: &Value, tenant: &str) -> usize {
    match value {
        Value::String(text) => usize::from(text == tenant || text.starts_with(&format!("T#{tenant}#"))),
        Value::Array(values) => values.iter().map(|v| tenant_copies(v, tenant)).sum(),
        Value::Object(map) => map.values().map(|v| tenant_copies(v, tenant)).sum(),
        _ => 0,
    }
}

fn copies_in(item: Option<&Map<String, Value>>, tenant: &str) -> usize {
    item.map_or(0, |item| item.values().map(|v| tenant_copies(v, tenant)).sum())
}

/// `pk|sk` of a key or item in DynamoDB JSON.
pub fn key_of(item: &Map<String, Value>) -> String {
    let part = |name: &str| item.get(name).and_then(|v| v.get("S")).and_then(Value::as_str).unwrap_or("");
    format!("{}|{}", part("pk"), part("sk"))
}

/// The item's `kind`, else its sort key; `missing` for a read that found nothing.
fn kind_of(item: Option<&Map<String, Value>>) -> String {
    let Some(item) = item else { return "missing".to_owned() };
    let text = |name: &str| item.get(name).and_then(|v| v.get("S")).and_then(Value::as_str);
    text("kind").map_or_else(|| format!("sk {}", text("sk").unwrap_or("?")), str::to_owned)
}

/// A write a request asked for: its action, its key, the item of a put.
struct Write<'a> {
    action: &'static str,
    key: String,
    put: Option<&'a Map<String, Value>>,
}

fn writes_of<'a>(exchange: &'a Exchange) -> Vec<Write<'a>> {
    let request = &exchange.request;
    let mut writes = Vec::new();
    let mut push = |action, target: &'a Value, item_field: &str| {
        let put = if item_field == "Item" { target.get("Item").and_then(Value::as_object) } else { None };
        if let Some(fields) = target.get(item_field).and_then(Value::as_object) {
            writes.push(Write { action, key: key_of(fields), put });
        }
    };
    match exchange.operation.as_str() {
        "TransactWriteItems" => {
            for entry in request["TransactItems"].as_array().into_iter().flatten() {
                for (action, field) in
                    [("Put", "Item"), ("Update", "Key"), ("Delete", "Key"), ("ConditionCheck", "Key")]
                {
                    if let Some(target) = entry.get(action) {
                        push(action, target, field);
                    }
                }
            }
        }
        "BatchWriteItem" => {
            for requests in request["RequestItems"].as_object().into_iter().flat_map(|m| m.values()) {
                for entry in requests.as_array().into_iter().flatten() {
                    if let Some(target) = entry.get("PutRequest") {
                        push("Put", target, "Item");
                    }
                    if let Some(target) = entry.get("DeleteRequest") {
                        push("Delete", target, "Key");
                    }
                }
            }
        }
        "PutItem" => push("Put", request, "Item"),
        "UpdateItem" => push("Update", request, "Key"),
        "DeleteItem" => push("Delete", request, "Key"),
        _ => {}
    }
    writes
}

/// The keys whose size must be read after the operation: written items that
/// streamed no change (condition checks, unchanged writes).
pub fn unchanged_keys(exchanges: &[Exchange], changes: &[Change]) -> Vec<String> {
    let changed: Vec<String> = changes.iter().filter_map(|c| c.keys.as_object().map(key_of)).collect();
    let mut keys: Vec<String> =
        exchanges.iter().flat_map(writes_of).filter(|w| !changed.contains(&w.key)).map(|w| w.key).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Every item the operation's DynamoDB requests wrote or read, with its units.
/// `current` holds the items of [`unchanged_keys`] as read after it.
pub fn account(
    exchanges: &[Exchange],
    changes: &[Change],
    current: &HashMap<String, Map<String, Value>>,
    indexes: &[Index],
    tenant: &str,
) -> Vec<Access> {
    let mut by_key: HashMap<String, VecDeque<&Change>> = HashMap::new();
    for change in changes {
        if let Some(keys) = change.keys.as_object() {
            by_key.entry(key_of(keys)).or_default().push_back(change);
        }
    }
    let mut accesses = Vec::new();
    for exchange in exchanges.iter().filter(|e| e.service == "dynamodb") {
        let factor = if exchange.operation == "TransactWriteItems" { 2.0 } else { 1.0 };
        for write in writes_of(exchange) {
            let change = by_key.get_mut(&write.key).and_then(VecDeque::pop_front);
            let (before, after) = match change {
                Some(change) => (change.before.as_ref(), change.after.as_ref()),
                None => (current.get(&write.key), write.put.or_else(|| current.get(&write.key))),
            };
            let bytes = before.map_or(0, item_size).max(after.map_or(0, item_size));
            let index_wru = match change {
                Some(_) => indexes.iter().map(|i| i.write_units(before, after)).sum(),
                None => 0.0,
            };
            // A condition check reads the item inside the transaction.
            let check = write.action == "ConditionCheck";
            accesses.push(Access {
                call: exchange.operation.clone(),
                action: write.action,
                kind: kind_of(after.or(before)),
                bytes,
                wru: if check { 0.0 } else { factor * write_units(bytes) },
                index_wru,
                rru: if check { factor * read_units(bytes, true) } else { 0.0 },
                tenant_copies: copies_in(after.or(before), tenant),
            });
        }
        accesses.extend(reads_of(exchange, tenant));
    }
    accesses
}

fn read_access(
    call: &str,
    action: &'static str,
    item: Option<&Map<String, Value>>,
    consistent: bool,
    tenant: &str,
) -> Access {
    let bytes = item.map_or(0, item_size);
    Access {
        call: call.to_owned(),
        action,
        kind: kind_of(item),
        bytes,
        wru: 0.0,
        index_wru: 0.0,
        rru: read_units(bytes, consistent),
        tenant_copies: copies_in(item, tenant),
    }
}

fn reads_of(exchange: &Exchange, tenant: &str) -> Vec<Access> {
    let (request, response) = (&exchange.request, &exchange.response);
    let consistent = |v: &Value| v.get("ConsistentRead").and_then(Value::as_bool).unwrap_or(false);
    let call = exchange.operation.as_str();
    match call {
        "GetItem" => vec![read_access(
            call,
            "Get",
            response.get("Item").and_then(Value::as_object),
            consistent(request),
            tenant,
        )],
        "BatchGetItem" => {
            let mut reads = Vec::new();
            for (table, wanted) in request["RequestItems"].as_object().into_iter().flatten() {
                let found: Vec<&Map<String, Value>> = response["Responses"][table]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .collect();
                for key in wanted["Keys"].as_array().into_iter().flatten().filter_map(Value::as_object) {
                    let item = found.iter().find(|item| key_of(item) == key_of(key)).copied();
                    reads.push(read_access(call, "Get", item, consistent(wanted), tenant));
                }
            }
            reads
        }
        "Query" | "Scan" => {
            let items: Vec<&Map<String, Value>> =
                response["Items"].as_array().into_iter().flatten().filter_map(Value::as_object).collect();
            let bytes = items.iter().map(|i| item_size(i)).sum();
            let kind = kind_of(items.first().copied());
            vec![Access {
                call: call.to_owned(),
                action: if call == "Query" { "Query" } else { "Scan" },
                kind: format!("{kind} ×{}", items.len()),
                bytes,
                wru: 0.0,
                index_wru: 0.0,
                rru: read_units(bytes, consistent(request)),
                tenant_copies: items.iter().map(|i| copies_in(Some(i), tenant)).sum(),
            }]
        }
        _ => Vec::new(),
    }
}
