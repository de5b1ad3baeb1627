//! Reading template.yaml: short-form intrinsics are turned into their long form once,
//! and the functions with their event sources are checked and extracted up front, so
//! the accessors cannot fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::LocalError;

pub(crate) const FUNCTION_TYPE: &str = "AWS::Serverless::Function";

/// SAM's defaults when neither the function nor `Globals.Function` sets a value.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
const DEFAULT_MEMORY_MB: u64 = 128;
const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;
const DEFAULT_SQS_BATCH_SIZE: u32 = 10;

/// A parsed SAM template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The whole document as JSON, intrinsics in long form (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`).
    root: Value,
    functions: Vec<FunctionSpec>,
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`, else the last segment of `CodeUri`.
    pub binary: String,
    pub code_uri: String,
    pub timeout_seconds: u64,
    pub memory_mb: u64,
    pub events: Vec<EventSource>,
}

/// What triggers a function.
#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    HttpApi {
        method: String,
        path: String,
    },
    /// `Schedule` (EventBridge rule) and `ScheduleV2` (EventBridge Scheduler) events;
    /// `input` is the event's `Input`, parsed from its JSON text.
    Schedule {
        /// The event's key under `Events`.
        name: String,
        expression: String,
        input: Option<Value>,
    },
    /// A `DynamoDB` event on `!GetAtt <table>.StreamArn`; filter patterns parsed from
    /// `FilterCriteria.Filters[].Pattern`.
    DynamoDbStream {
        table_logical_id: String,
        batch_size: u32,
        filter_patterns: Vec<Value>,
    },
    /// An `SQS` event on `!GetAtt <queue>.Arn`.
    Sqs {
        queue_logical_id: String,
        batch_size: u32,
    },
}

/// One route of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    pub function_logical_id: String,
}

impl Template {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LocalError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| LocalError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text)
    }

    pub fn parse(yaml: &str) -> Result<Self, LocalError> {
        let doc: serde_norway::Value = serde_norway::from_str(yaml)?;
        let root = to_json(&doc, "template")?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err(LocalError::invalid("Resources", "missing or not a mapping"));
        }
        let mut template = Template { root, functions: Vec::new() };
        template.functions = template.parse_functions()?;
        Ok(template)
    }

    /// The repository's template.yaml: found from `CARGO_MANIFEST_DIR/..` or by walking up
    /// from the current directory.
    pub fn load_repo() -> Result<Self, LocalError> {
        let mut starts: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            starts.push(PathBuf::from(dir));
        }
        // This crate lives at <repo>/local.
        starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
        if let Ok(cwd) = std::env::current_dir() {
            starts.push(cwd);
        }
        let mut searched = Vec::new();
        for start in starts {
            for dir in start.ancestors() {
                let candidate = dir.join("template.yaml");
                if candidate.is_file() {
                    return Self::load(candidate);
                }
                searched.push(dir.to_path_buf());
            }
        }
        Err(LocalError::TemplateNotFound { searched })
    }

    /// Every `AWS::Serverless::Function`, ordered by logical id.
    pub fn functions(&self) -> Vec<FunctionSpec> {
        self.functions.clone()
    }

    /// Every `HttpApi` event of every function.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        self.functions
            .iter()
            .flat_map(|f| {
                f.events.iter().filter_map(|e| match e {
                    EventSource::HttpApi { method, path } => Some(HttpRoute {
                        method: method.clone(),
                        path: path.clone(),
                        function_logical_id: f.logical_id.clone(),
                    }),
                    _ => None,
                })
            })
            .collect()
    }

    /// `LoggingConfig.LogFormat` of a function, else of `Globals.Function` (`JSON` or `Text`).
    pub fn log_format(&self, function_logical_id: &str) -> Option<String> {
        let own = self.resources().get(function_logical_id)?.pointer("/Properties/LoggingConfig/LogFormat");
        let global = || self.globals_function()?.get("LoggingConfig")?.get("LogFormat");
        own.or_else(global).and_then(Value::as_str).map(str::to_owned)
    }

    /// Each parameter's `Default` as a string (lists joined with commas, as CloudFormation
    /// passes them); parameters without a default are left out.
    pub fn parameter_defaults(&self) -> BTreeMap<String, String> {
        self.parameters()
            .iter()
            .filter_map(|(name, p)| {
                let default = match p.get("Default")? {
                    Value::Array(items) => {
                        items.iter().map(scalar_string).collect::<Option<Vec<_>>>()?.join(",")
                    }
                    other => scalar_string(other)?,
                };
                Some((name.clone(), default))
            })
            .collect()
    }

    pub(crate) fn parameters(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.root.get("Parameters").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    pub(crate) fn resources(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.root.get("Resources").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    pub(crate) fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resources().get(logical_id)?.get("Type")?.as_str()
    }

    pub(crate) fn globals_function(&self) -> Option<&Map<String, Value>> {
        self.root.get("Globals")?.get("Function")?.as_object()
    }

    fn parse_functions(&self) -> Result<Vec<FunctionSpec>, LocalError> {
        let globals = self.globals_function();
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let at = format!("Resources.{id}");
            let Some(kind) = resource.get("Type") else {
                return Err(LocalError::invalid(at, "resource has no Type"));
            };
            if kind.as_str() != Some(FUNCTION_TYPE) {
                continue;
            }
            let empty = Map::new();
            let props = match resource.get("Properties") {
                None => &empty,
                Some(Value::Object(p)) => p,
                Some(_) => {
                    return Err(LocalError::invalid(format!("{at}.Properties"), "not a mapping"));
                }
            };
            let setting = |key: &str| props.get(key).or_else(|| globals.and_then(|g| g.get(key)));

            let code_uri = match setting("CodeUri") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(LocalError::invalid(
                        format!("{at}.Properties.CodeUri"),
                        "only a local directory (a string) is supported",
                    ));
                }
                None => {
                    return Err(LocalError::invalid(format!("{at}.Properties"), "no CodeUri"));
                }
            };
            let binary = match resource.pointer("/Metadata/BuildProperties/Binary") {
                Some(Value::String(b)) => b.clone(),
                Some(_) => {
                    return Err(LocalError::invalid(
                        format!("{at}.Metadata.BuildProperties.Binary"),
                        "not a string",
                    ));
                }
                None => code_uri
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        LocalError::invalid(
                            format!("{at}.Metadata"),
                            "no BuildProperties.Binary and CodeUri names no directory",
                        )
                    })?,
            };
            let timeout_seconds = match setting("Timeout") {
                Some(v) => self.static_u64(v, &format!("{at}.Timeout"))?,
                None => DEFAULT_TIMEOUT_SECONDS,
            };
            let memory_mb = match setting("MemorySize") {
                Some(v) => self.static_u64(v, &format!("{at}.MemorySize"))?,
                None => DEFAULT_MEMORY_MB,
            };
            let events = match props.get("Events") {
                None => Vec::new(),
                Some(Value::Object(events)) => events
                    .iter()
                    .map(|(name, e)| self.parse_event(name, e, &format!("{at}.Properties.Events.{name}")))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(LocalError::invalid(format!("{at}.Properties.Events"), "not a mapping"));
                }
            };
            out.push(FunctionSpec {
                logical_id: id.clone(),
                binary,
                code_uri,
                timeout_seconds,
                memory_mb,
                events,
            });
        }
        Ok(out)
    }

    fn parse_event(&self, name: &str, event: &Value, at: &str) -> Result<EventSource, LocalError> {
        let kind = event
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| LocalError::invalid(at, "event has no Type"))?;
        let empty = Value::Object(Map::new());
        let props = event.get("Properties").unwrap_or(&empty);
        let at = format!("{at}.Properties");
        let opt_str = |key: &str| -> Result<Option<String>, LocalError> {
            match props.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(LocalError::invalid(format!("{at}.{key}"), "must be a plain string")),
            }
        };
        let batch_size = |default: u32| -> Result<u32, LocalError> {
            match props.get("BatchSize") {
                None => Ok(default),
                Some(v) => {
                    let n = self.static_u64(v, &format!("{at}.BatchSize"))?;
                    u32::try_from(n).map_err(|_| LocalError::invalid(format!("{at}.BatchSize"), "too large"))
                }
            }
        };
        match kind {
            "HttpApi" => Ok(EventSource::HttpApi {
                method: opt_str("Method")?.map_or_else(|| "ANY".to_owned(), |m| m.to_ascii_uppercase()),
                path: opt_str("Path")?.unwrap_or_else(|| "$default".to_owned()),
            }),
            "Schedule" | "ScheduleV2" => {
                let key = if kind == "Schedule" { "Schedule" } else { "ScheduleExpression" };
                let expression =
                    opt_str(key)?.ok_or_else(|| LocalError::invalid(&at, format!("no {key}")))?;
                let input =
                    match props.get("Input") {
                        None => None,
                        Some(Value::String(text)) => Some(serde_json::from_str(text).map_err(|e| {
                            LocalError::invalid(format!("{at}.Input"), format!("not JSON: {e}"))
                        })?),
                        Some(other) => Some(other.clone()),
                    };
                Ok(EventSource::Schedule { name: name.to_owned(), expression, input })
            }
            "DynamoDB" => {
                let table_logical_id =
                    self.get_att_target(props.get("Stream"), "StreamArn", &format!("{at}.Stream"))?;
                let filters = match props.pointer("/FilterCriteria/Filters") {
                    None => Vec::new(),
                    Some(Value::Array(filters)) => filters.clone(),
                    Some(_) => {
                        return Err(LocalError::invalid(
                            format!("{at}.FilterCriteria.Filters"),
                            "not a list",
                        ));
                    }
                };
                let filter_patterns = filters
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let at = format!("{at}.FilterCriteria.Filters[{i}].Pattern");
                        match f.get("Pattern") {
                            Some(Value::String(text)) => serde_json::from_str(text)
                                .map_err(|e| LocalError::invalid(&at, format!("not JSON: {e}"))),
                            Some(pattern @ Value::Object(_)) => Ok(pattern.clone()),
                            _ => Err(LocalError::invalid(&at, "missing or not a JSON string")),
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(EventSource::DynamoDbStream {
                    table_logical_id,
                    batch_size: batch_size(DEFAULT_STREAM_BATCH_SIZE)?,
                    filter_patterns,
                })
            }
            "SQS" => Ok(EventSource::Sqs {
                queue_logical_id: self.get_att_target(props.get("Queue"), "Arn", &format!("{at}.Queue"))?,
                batch_size: batch_size(DEFAULT_SQS_BATCH_SIZE)?,
            }),
            other => Err(LocalError::invalid(
                at,
                format!(
                    "event type {other} is not supported (HttpApi, Schedule, ScheduleV2, DynamoDB, SQS are)"
                ),
            )),
        }
    }

    /// `!GetAtt X.<attribute>` naming a resource of the template → `X`.
    fn get_att_target(&self, value: Option<&Value>, attribute: &str, at: &str) -> Result<String, LocalError> {
        let target = value
            .and_then(|v| v.get("Fn::GetAtt"))
            .and_then(get_att_parts)
            .filter(|(_, attr)| attr == attribute)
            .map(|(id, _)| id)
            .ok_or_else(|| LocalError::invalid(at, format!("must be !GetAtt <resource>.{attribute}")))?;
        if self.resources().contains_key(&target) {
            Ok(target)
        } else {
            Err(LocalError::invalid(at, format!("{target} is not a resource of the template")))
        }
    }

    /// A number known without provisioning: a literal, a numeric string, or `!Ref` to a
    /// parameter's default.
    fn static_u64(&self, value: &Value, at: &str) -> Result<u64, LocalError> {
        let resolved = match value.get("Ref").and_then(Value::as_str) {
            Some(param) => self.parameter_defaults().get(param).cloned().ok_or_else(|| {
                LocalError::invalid(at, format!("Ref to {param}, which is no parameter with a default"))
            })?,
            None => scalar_string(value).ok_or_else(|| LocalError::invalid(at, "not a number"))?,
        };
        resolved
            .parse()
            .map_err(|_| LocalError::invalid(at, format!("{resolved:?} is not a non-negative integer")))
    }
}

/// `Fn::GetAtt` arguments, `[X, Attr]` or `"X.Attr"`, as `(X, Attr)`.
pub(crate) fn get_att_parts(arg: &Value) -> Option<(String, String)> {
    match arg {
        Value::Array(parts) => match parts.as_slice() {
            [Value::String(id), Value::String(attr)] => Some((id.clone(), attr.clone())),
            _ => None,
        },
        Value::String(s) => s.split_once('.').map(|(id, attr)| (id.to_owned(), attr.to_owned())),
        _ => None,
    }
}

/// A string, number or boolean as the string CloudFormation would pass on.
pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// YAML → JSON, with short-form intrinsics (`!Ref X`, `!GetAtt A.B`, `!Sub ..`, `!Join ..`)
/// rewritten to their long form.
fn to_json(value: &serde_norway::Value, at: &str) -> Result<Value, LocalError> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| LocalError::invalid(at, format!("number {n} has no JSON form")))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(LocalError::invalid(at, "mapping key is not a scalar")),
                };
                let child = to_json(v, &format!("{at}.{key}"))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
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
            Value::Object(out)
        }
    })
}
