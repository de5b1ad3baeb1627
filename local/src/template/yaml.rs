//! YAML → JSON, with CloudFormation's short-form intrinsics (`!Ref X`, `!GetAtt A.B`,
//! `!Sub ..`, `!Join ..`, any `!Name`) rewritten to their long form (`{"Ref": ..}`,
//! `{"Fn::GetAtt": [A, B]}`, `{"Fn::Name": ..}`).

use serde_json::{Map, Value};
use serde_norway::Value as Yaml;
use serde_norway::value::TaggedValue;

use crate::error::LocalError;

pub(super) fn parse(text: &str) -> Result<Value, LocalError> {
    let doc: Yaml = serde_norway::from_str(text)?;
    to_json(&doc, "template")
}

fn to_json(value: &Yaml, at: &str) -> Result<Value, LocalError> {
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => number(n, at)?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => return Err(LocalError::invalid(at, "mapping key is not a scalar")),
                };
                let child = to_json(v, &format!("{at}.{key}"))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => intrinsic(tagged, at)?,
    })
}

fn number(n: &serde_norway::Number, at: &str) -> Result<Value, LocalError> {
    if let Some(u) = n.as_u64() {
        Ok(Value::from(u))
    } else if let Some(i) = n.as_i64() {
        Ok(Value::from(i))
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| LocalError::invalid(at, format!("number {n} has no JSON form")))
    }
}

/// `!Name value` → `{"Fn::Name": value}`; `!Ref` and `!Condition` keep their name, and
/// `!GetAtt A.B` takes the list form `[A, B]`.
fn intrinsic(tagged: &TaggedValue, at: &str) -> Result<Value, LocalError> {
    let tag = tagged.tag.to_string();
    let name = tag.trim_start_matches('!');
    let inner = to_json(&tagged.value, &format!("{at}.{tag}"))?;
    let (key, arg) = match name {
        "Ref" | "Condition" => (name.to_owned(), inner),
        "GetAtt" => {
            let arg = match &inner {
                Value::String(s) => match s.split_once('.') {
                    Some((id, attr)) => Value::from(vec![id, attr]),
                    None => {
                        return Err(LocalError::invalid(
                            at,
                            format!("!GetAtt {s}: expected Resource.Attribute"),
                        ));
                    }
                },
                _ => inner,
            };
            ("Fn::GetAtt".to_owned(), arg)
        }
        other => (format!("Fn::{other}"), inner),
    };
    let mut out = Map::new();
    out.insert(key, arg);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_intrinsics_become_their_long_form() {
        let doc = parse(
            r#"
A: !Ref Table
B: !GetAtt Table.StreamArn
C: !GetAtt [Table, Arn]
D: !Sub "${AWS::StackName}-x"
E: !Sub ["${K}-y", {K: !Ref Key}]
F: !Join [",", [!Ref P, b]]
G: !Condition IsProd
H: 1.5
"#,
        )
        .expect("parse");
        assert_eq!(
            doc,
            json!({
                "A": {"Ref": "Table"},
                "B": {"Fn::GetAtt": ["Table", "StreamArn"]},
                "C": {"Fn::GetAtt": ["Table", "Arn"]},
                "D": {"Fn::Sub": "${AWS::StackName}-x"},
                "E": {"Fn::Sub": ["${K}-y", {"K": {"Ref": "Key"}}]},
                "F": {"Fn::Join": [",", [{"Ref": "P"}, "b"]]},
                "G": {"Condition": "IsProd"},
                "H": 1.5,
            })
        );
        assert!(parse("A: !GetAtt NoAttribute").is_err());
    }
}
