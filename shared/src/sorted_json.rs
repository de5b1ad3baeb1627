//! Sorted JSON: object keys sorted by their UTF-8 bytes, no whitespace, the
//! rest as `serde_json` writes it. Equal documents give equal bytes, so they
//! can be hashed (idempotency fingerprints, the audit chain) whatever map
//! implementation `serde_json` was built with.
//!
//! This is not RFC 8785 (JCS): JCS sorts keys by UTF-16 code units and writes
//! non-integer numbers by the ECMAScript rules. The exact byte format, which an
//! outside verifier of the audit chain reproduces, is in docs/EVENTS.md.

use serde_json::Value;

/// The sorted text of `value`.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    write_sorted(value, &mut out);
    out
}

fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::encode;
    use serde_json::json;

    /// The byte format docs/EVENTS.md states, character class by character class.
    #[test]
    fn writes_the_documented_bytes() {
        let value = json!({
            "é": true,
            "b": "\u{8}\u{c}\n\r\t\u{1}\u{1f}/é\"\\",
            "a": [1, -2, 1.5, 1e21, null, false],
            "B": {"z": 0, "y": {}},
        });
        assert_eq!(
            encode(&value),
            r#"{"B":{"y":{},"z":0},"a":[1,-2,1.5,1e+21,null,false],"b":"\b\f\n\r\t\u0001\u001f/é\"\\","é":true}"#
        );
    }
}
