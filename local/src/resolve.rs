//! Resolution of the intrinsic functions the template uses, against provisioned resources.
//! Errors are plain reasons; callers wrap them with the function/variable or
//! resource/property they were resolving.

use serde_json::{Map, Value};

use crate::stack::{ACCOUNT_ID, Context, Physical, ResourceKind, api_id, execute_api_domain};
use crate::template::{WEBSOCKET_API_TYPE, WEBSOCKET_STAGE_TYPE, get_att_parts, scalar_string};

impl Context<'_> {
    /// Resolves every intrinsic inside `value`.
    pub fn resolve(&self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Object(map) => {
                if let Some((key, arg)) = intrinsic(map) {
                    return self.intrinsic(key, arg);
                }
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<Result<Map<_, _>, String>>()
                    .map(Value::Object)
            }
            Value::Array(items) => {
                items.iter().map(|v| self.resolve(v)).collect::<Result<_, _>>().map(Value::Array)
            }
            scalar => Ok(scalar.clone()),
        }
    }

    /// Resolves `value` to the string CloudFormation would hand on (numbers and booleans
    /// as text).
    pub fn resolve_string(&self, value: &Value) -> Result<String, String> {
        let resolved = self.resolve(value)?;
        scalar_string(&resolved)
            .ok_or_else(|| format!("resolves to {resolved}, not to a string, number or boolean"))
    }

    fn intrinsic(&self, key: &str, arg: &Value) -> Result<Value, String> {
        match key {
            "Ref" => match arg {
                Value::String(name) => self.reference(name).map(Value::String),
                other => Err(format!("Ref takes a name, got {other}")),
            },
            "Fn::GetAtt" => {
                let (id, attr) = get_att_parts(arg)
                    .ok_or_else(|| format!("Fn::GetAtt takes [Resource, Attribute], got {arg}"))?;
                self.attribute(&id, &attr).map(Value::String)
            }
            "Fn::Sub" => self.sub(arg).map(Value::String),
            "Fn::Join" => match arg {
                Value::Array(parts) => match parts.as_slice() {
                    [Value::String(delimiter), list] => {
                        let Value::Array(items) = self.resolve(list)? else {
                            return Err("Fn::Join takes [delimiter, [values]]".to_owned());
                        };
                        let items = items
                            .iter()
                            .map(|v| scalar_string(v).ok_or_else(|| format!("Fn::Join: {v} is not a string")))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Value::String(items.join(delimiter)))
                    }
                    _ => Err("Fn::Join takes [delimiter, [values]]".to_owned()),
                },
                _ => Err("Fn::Join takes [delimiter, [values]]".to_owned()),
            },
            other => Err(format!("unsupported intrinsic function {other}")),
        }
    }

    /// `Ref` to a pseudo parameter, a parameter or a provisioned resource.
    fn reference(&self, name: &str) -> Result<String, String> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(ACCOUNT_ID.to_owned()),
            "AWS::StackName" => return Ok(self.stack_name.clone()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            _ => {}
        }
        if let Some(value) = self.params.get(name) {
            return Ok(value.clone());
        }
        if self.template.parameters().contains_key(name) {
            return Err(format!("parameter {name} has no default and no override was given"));
        }
        // The WebSocket API is served by the local stack itself, not provisioned: its id is
        // its logical id, its stage's the stage name (the deliver function's
        // CONNECTIONS_ENDPOINT, which the local stack points at its own endpoint).
        match self.template.resource_type(name) {
            Some(WEBSOCKET_API_TYPE) => return Ok(api_id(name)),
            Some(WEBSOCKET_STAGE_TYPE) => {
                let stage = self.template.resources()[name].pointer("/Properties/StageName");
                return stage.map_or_else(|| Ok("$default".to_owned()), |s| self.resolve_string(s));
            }
            _ => {}
        }
        let physical = self.physical(name)?;
        Ok(match physical.kind {
            ResourceKind::Queue => physical.url.clone().unwrap_or_default(),
            ResourceKind::Table | ResourceKind::Key | ResourceKind::Alias | ResourceKind::Bucket => {
                physical.name.clone()
            }
        })
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        if self.template.resource_type(id) == Some(WEBSOCKET_API_TYPE) {
            return match attribute {
                "ApiId" => Ok(api_id(id)),
                "ApiEndpoint" => Ok(format!("wss://{}", execute_api_domain(id, &self.region))),
                other => Err(format!("{id} (WebSocket API) has no attribute {other} locally")),
            };
        }
        let physical = self.physical(id)?;
        let value = match (physical.kind, attribute) {
            (_, "Arn") => Some(physical.arn.clone()),
            (ResourceKind::Table, "StreamArn") => physical.stream_arn.clone(),
            (ResourceKind::Key, "KeyId") => Some(physical.name.clone()),
            (ResourceKind::Queue, "QueueUrl") => physical.url.clone(),
            (ResourceKind::Queue, "QueueName") => Some(physical.name.clone()),
            _ => None,
        };
        value.ok_or_else(|| format!("{id} ({:?}) has no attribute {attribute} locally", physical.kind))
    }

    fn physical(&self, id: &str) -> Result<&Physical, String> {
        if let Some(p) = self.resources.get(id) {
            return Ok(p);
        }
        Err(match self.template.resource_type(id) {
            Some(kind) => format!("{id} ({kind}) is not provisioned locally"),
            None => format!("{id} is neither a parameter nor a resource of the template"),
        })
    }

    /// `Fn::Sub`: a string, or `[string, {Var: value}]`.
    fn sub(&self, arg: &Value) -> Result<String, String> {
        let (text, vars) = match arg {
            Value::String(text) => (text.as_str(), None),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(text), Value::Object(vars)] => (text.as_str(), Some(vars)),
                _ => return Err("Fn::Sub takes a string or [string, {variables}]".to_owned()),
            },
            other => return Err(format!("Fn::Sub takes a string, got {other}")),
        };
        let mut out = String::new();
        for piece in sub_pieces(text)? {
            match piece {
                SubPiece::Text(t) => out.push_str(t),
                SubPiece::Var(name) => {
                    let value = match vars.and_then(|v| v.get(name)) {
                        Some(v) => self.resolve_string(v)?,
                        None => match name.split_once('.') {
                            Some((id, attr)) => self.attribute(id, attr)?,
                            None => self.reference(name)?,
                        },
                    };
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }
}

/// An object with a single `Ref` or `Fn::*` key is an intrinsic function call.
fn intrinsic(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (key, arg) = map.iter().next()?;
    (key == "Ref" || key.starts_with("Fn::")).then_some((key.as_str(), arg))
}

pub(crate) enum SubPiece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a `Fn::Sub` string into text and `${Var}` placeholders; `${!Text}` is the
/// literal `${Text}`.
pub(crate) fn sub_pieces(text: &str) -> Result<Vec<SubPiece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(SubPiece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {text:?}"))?;
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            pieces.push(SubPiece::Text("${"));
            pieces.push(SubPiece::Text(literal));
            pieces.push(SubPiece::Text("}"));
        } else if name.trim().is_empty() {
            return Err(format!("Fn::Sub: empty ${{}} in {text:?}"));
        } else {
            pieces.push(SubPiece::Var(name.trim()));
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(SubPiece::Text(rest));
    }
    Ok(pieces)
}

/// The logical ids `value` refers to (`Ref`, `Fn::GetAtt`, `Fn::Sub` placeholders).
pub(crate) fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some((key, arg)) = intrinsic(map) {
                match key {
                    "Ref" => {
                        if let Value::String(name) = arg {
                            out.push(name.clone());
                        }
                        return;
                    }
                    "Fn::GetAtt" => {
                        if let Some((id, _)) = get_att_parts(arg) {
                            out.push(id);
                        }
                        return;
                    }
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::Array(parts) => (parts.first(), parts.get(1)),
                            text => (Some(text), None),
                        };
                        if let Some(Value::String(text)) = text {
                            for piece in sub_pieces(text).unwrap_or_default() {
                                if let SubPiece::Var(name) = piece {
                                    let id = name.split_once('.').map_or(name, |(id, _)| id);
                                    out.push(id.to_owned());
                                }
                            }
                        }
                        if let Some(vars) = vars {
                            references(vars, out);
                        }
                        return;
                    }
                    _ => {}
                }
            }
            for v in map.values() {
                references(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}
