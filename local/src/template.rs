//! Reading template.yaml: short-form intrinsics are turned into their long form once,
//! and the functions with their event sources are checked and extracted up front, so
//! the accessors cannot fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::LocalError;

mod functions;
mod websocket;
mod yaml;

pub(crate) use websocket::{API_TYPE as WEBSOCKET_API_TYPE, STAGE_TYPE as WEBSOCKET_STAGE_TYPE};
pub use websocket::{WebSocketApi, WebSocketRoute};

pub(crate) const FUNCTION_TYPE: &str = "AWS::Serverless::Function";

/// A parsed SAM template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The whole document as JSON, intrinsics in long form (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`).
    root: Value,
    functions: Vec<FunctionSpec>,
    websocket_apis: Vec<WebSocketApi>,
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

    pub fn parse(text: &str) -> Result<Self, LocalError> {
        let root = yaml::parse(text)?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err(LocalError::invalid("Resources", "missing or not a mapping"));
        }
        let mut template = Template { root, functions: Vec::new(), websocket_apis: Vec::new() };
        template.functions = template.parse_functions()?;
        template.websocket_apis = template.parse_websocket_apis()?;
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

    /// Every WebSocket API (`AWS::ApiGatewayV2::Api`, `ProtocolType: WEBSOCKET`), by
    /// logical id, with its routes.
    pub fn websocket_apis(&self) -> &[WebSocketApi] {
        &self.websocket_apis
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
