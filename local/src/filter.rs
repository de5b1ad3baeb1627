//! Lambda's event filtering (`FilterCriteria`): a record is passed to the function when
//! any pattern matches its JSON form. Patterns use the EventBridge syntax: objects nest,
//! and a leaf is a list of alternatives, each a literal or one of `prefix`, `suffix`,
//! `anything-but`, `exists`, `numeric` and `equals-ignore-case`.

use serde_json::Value;

/// True when `record` matches any of `patterns`, or when there are none.
pub fn matches_any(patterns: &[Value], record: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, Some(record)))
}

fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, sub)| {
            let field = value.and_then(|v| v.get(key));
            match sub {
                Value::Object(_) => matches(sub, field),
                _ => leaf_matches(sub, field),
            }
        }),
        _ => leaf_matches(pattern, value),
    }
}

/// A leaf: a list of alternatives; an array value matches when any element does.
fn leaf_matches(alternatives: &Value, value: Option<&Value>) -> bool {
    let alternatives = match alternatives {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    alternatives.iter().any(|alternative| match value {
        Some(Value::Array(elements)) => elements.iter().any(|e| alternative_matches(alternative, Some(e))),
        other => alternative_matches(alternative, other),
    })
}

fn alternative_matches(alternative: &Value, value: Option<&Value>) -> bool {
    let Value::Object(rule) = alternative else {
        return value == Some(alternative);
    };
    let Some((operator, operand)) = rule.iter().next() else {
        return false;
    };
    let text = value.and_then(Value::as_str);
    match operator.as_str() {
        "exists" => operand.as_bool() == Some(value.is_some()),
        "prefix" => text.zip(operand.as_str()).is_some_and(|(t, p)| t.starts_with(p)),
        "suffix" => text.zip(operand.as_str()).is_some_and(|(t, s)| t.ends_with(s)),
        "equals-ignore-case" => text.zip(operand.as_str()).is_some_and(|(t, o)| t.eq_ignore_ascii_case(o)),
        "anything-but" => value.is_some() && !leaf_matches(operand, value),
        "numeric" => value.and_then(Value::as_f64).is_some_and(|n| numeric_matches(operand, n)),
        _ => false,
    }
}

/// `["<", 10, ">=", 2]`: every comparison holds.
fn numeric_matches(conditions: &Value, n: f64) -> bool {
    let Some(items) = conditions.as_array() else {
        return false;
    };
    items.len() % 2 == 0
        && items.chunks(2).all(|pair| {
            let (Some(op), Some(bound)) = (pair[0].as_str(), pair[1].as_f64()) else {
                return false;
            };
            match op {
                "=" => n == bound,
                "<" => n < bound,
                "<=" => n <= bound,
                ">" => n > bound,
                ">=" => n >= bound,
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outbox_pattern() -> Value {
        json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["outbox"]}}}})
    }

    #[test]
    fn template_pattern_selects_outbox_inserts_only() {
        let insert = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"kind": {"S": "outbox"}}}});
        let modify = json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {"kind": {"S": "outbox"}}}});
        let other = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"kind": {"S": "user"}}}});
        let removed = json!({"eventName": "REMOVE", "dynamodb": {"OldImage": {"kind": {"S": "outbox"}}}});
        let patterns = [outbox_pattern()];
        assert!(matches_any(&patterns, &insert));
        assert!(!matches_any(&patterns, &modify));
        assert!(!matches_any(&patterns, &other));
        assert!(!matches_any(&patterns, &removed));
    }

    #[test]
    fn no_patterns_pass_everything_and_any_pattern_suffices() {
        let record = json!({"eventName": "MODIFY"});
        assert!(matches_any(&[], &record));
        let patterns = [json!({"eventName": ["INSERT"]}), json!({"eventName": ["MODIFY"]})];
        assert!(matches_any(&patterns, &record));
    }

    #[test]
    fn content_filters() {
        let record = json!({"a": "order-17", "n": 5, "tags": ["x", "y"]});
        let pass = |p: Value| matches_any(&[p], &record);
        assert!(pass(json!({"a": [{"prefix": "order-"}]})));
        assert!(!pass(json!({"a": [{"prefix": "user-"}]})));
        assert!(pass(json!({"a": [{"suffix": "-17"}]})));
        assert!(pass(json!({"a": [{"equals-ignore-case": "ORDER-17"}]})));
        assert!(pass(json!({"a": [{"anything-but": ["x"]}]})));
        assert!(!pass(json!({"a": [{"anything-but": "order-17"}]})));
        assert!(pass(json!({"n": [{"numeric": [">", 1, "<=", 5]}]})));
        assert!(!pass(json!({"n": [{"numeric": [">", 5]}]})));
        assert!(pass(json!({"missing": [{"exists": false}]})));
        assert!(!pass(json!({"a": [{"exists": false}]})));
        assert!(pass(json!({"tags": ["y"]})));
        assert!(!pass(json!({"missing": ["x"]})));
    }
}
