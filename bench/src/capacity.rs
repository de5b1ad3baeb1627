//! DynamoDB's published capacity rules, applied to the bytes a request
//! actually wrote and read (DynamoDB JSON, as on the wire and in stream
//! images):
//!
//! - item size: the sum over attributes of the name's UTF-8 bytes and the
//!   value's size (string: UTF-8 bytes; binary: raw bytes; number: 1 byte per
//!   two significant digits plus 1; boolean and null: 1; list and map: 3 bytes
//!   plus 1 byte per element plus the elements, a map element counting its
//!   name; sets: the sum of their elements);
//! - writes: 1 write request unit per started KB of the larger of the item's
//!   size before and after, 2 in a transaction (a transaction's condition
//!   check is counted as a transactional read of its item); every global secondary index
//!   the item enters, leaves or changes in adds standard writes of the index
//!   entry (all projected attributes here, so the item's size): 1 to enter,
//!   leave or change, 2 when its index key changes (delete and put);
//! - reads: 1 read request unit per started 4 KB of an item strongly
//!   consistent, half of it eventually consistent; a missing item costs the
//!   minimum; a query sums the sizes of the items of a page, then rounds.

use serde_json::Value;

pub const WRITE_UNIT: usize = 1024;
pub const READ_UNIT: usize = 4096;

/// The size of one attribute value (DynamoDB JSON: `{"S": "..."}` etc).
pub fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|m| m.iter().next()) else { return 0 };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, number_size),
        "B" => inner.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings(inner).map(str::len).sum(),
        "NS" => strings(inner).map(number_size).sum(),
        "BS" => strings(inner).map(base64_len).sum(),
        "L" => 3 + inner.as_array().map_or(0, |l| l.iter().map(|v| 1 + value_size(v)).sum()),
        "M" => 3 + inner.as_object().map_or(0, |m| m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum()),
        _ => 0,
    }
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// 1 byte per two significant digits, plus 1 (plus 1 for a negative number):
/// leading and trailing zeros do not count.
pub fn number_size(number: &str) -> usize {
    let negative = number.starts_with('-');
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1 + usize::from(negative)
}

fn base64_len(text: &str) -> usize {
    let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding)
}

/// The size of an item (a map of attribute name to DynamoDB JSON value).
pub fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// Write request units of a write of this size (at least 1).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT).max(1) as f64
}

/// Read request units of a read of this size (at least the minimum).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(READ_UNIT).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// One global secondary index: its key attributes.
#[derive(Debug, Clone)]
pub struct Index {
    pub keys: Vec<String>,
}

impl Index {
    fn key_of<'a>(&self, item: Option<&'a serde_json::Map<String, Value>>) -> Option<Vec<&'a Value>> {
        let item = item?;
        self.keys.iter().map(|k| item.get(k)).collect()
    }

    /// Index write units of a change from `before` to `after` (ALL projection).
    pub fn write_units(
        &self,
        before: Option<&serde_json::Map<String, Value>>,
        after: Option<&serde_json::Map<String, Value>>,
    ) -> f64 {
        let size = |item: Option<&serde_json::Map<String, Value>>| item.map_or(0, item_size);
        match (self.key_of(before), self.key_of(after)) {
            (None, None) => 0.0,
            (None, Some(_)) => write_units(size(after)),
            (Some(_), None) => write_units(size(before)),
            (Some(old), Some(new)) if old != new => write_units(size(before)) + write_units(size(after)),
            (Some(_), Some(_)) if before == after => 0.0,
            (Some(_), Some(_)) => write_units(size(before).max(size(after))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_the_published_rules() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("600"), 2);
        assert_eq!(number_size("1000000000000"), 2);
        assert_eq!(number_size("123456"), 4);
        assert_eq!(number_size("-12.5"), 4);
        assert_eq!(value_size(&json!({"S": "héllo"})), 6);
        assert_eq!(value_size(&json!({"M": {}})), 3);
        assert_eq!(value_size(&json!({"M": {"a": {"S": "xy"}}})), 3 + 1 + 1 + 2);
        assert_eq!(value_size(&json!({"L": [{"BOOL": true}, {"NULL": true}]})), 3 + 2 + 2);
        assert_eq!(value_size(&json!({"B": "AAEC"})), 3);
        let item = json!({"pk": {"S": "T#a#X"}, "n": {"N": "42"}});
        assert_eq!(item_size(item.as_object().unwrap()), 2 + 5 + 1 + 2);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(4097, false), 1.0);
    }
}
