//! Typed reads of resolved resource properties, with the template path in every error.

use serde_json::{Map, Value};

use crate::error::LocalError;

#[derive(Clone, Copy)]
pub(crate) struct Props<'a> {
    map: &'a Map<String, Value>,
    at: &'a str,
}

pub(crate) struct OwnedAt(pub String);

impl<'a> Props<'a> {
    pub fn new(value: &'a Value, at: &'a str) -> Result<Self, LocalError> {
        match value {
            Value::Object(map) => Ok(Props { map, at }),
            _ => Err(LocalError::invalid(at, "not a mapping")),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, LocalError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(LocalError::invalid(self.path(key), "not a string")),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<&'a str, LocalError> {
        self.str(key)?.ok_or_else(|| LocalError::invalid(self.path(key), "missing"))
    }

    /// `true`/`false`, also as the strings a `Ref` to a parameter yields.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, LocalError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(LocalError::invalid(self.path(key), "not a boolean")),
        }
    }

    /// An integer, also as a numeric string.
    pub fn int(&self, key: &str) -> Result<Option<i64>, LocalError> {
        let bad = || LocalError::invalid(self.path(key), "not an integer");
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// The items of a list with their paths; a missing list is empty.
    pub fn list(&self, key: &str) -> Result<Vec<(OwnedAt, &'a Value)>, LocalError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (OwnedAt(format!("{}.{key}[{i}]", self.at)), v))
                .collect()),
            Some(_) => Err(LocalError::invalid(self.path(key), "not a list")),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn at(&self) -> &str {
        self.at
    }
}
