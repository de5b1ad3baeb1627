//! The template's `AWS::Serverless::Function`s and their event sources, checked and
//! extracted once when the template is parsed.

use serde_json::{Map, Value};

use super::{EventSource, FUNCTION_TYPE, FunctionSpec, Template};
use crate::error::LocalError;

/// SAM's defaults when neither the function nor `Globals.Function` sets a value.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
const DEFAULT_MEMORY_MB: u64 = 128;
const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;
const DEFAULT_SQS_BATCH_SIZE: u32 = 10;

impl Template {
    pub(super) fn parse_functions(&self) -> Result<Vec<FunctionSpec>, LocalError> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let at = format!("Resources.{id}");
            let Some(kind) = resource.get("Type") else {
                return Err(LocalError::invalid(at, "resource has no Type"));
            };
            if kind.as_str() == Some(FUNCTION_TYPE) {
                out.push(self.function(id, resource, &at)?);
            }
        }
        Ok(out)
    }

    fn function(&self, id: &str, resource: &Value, at: &str) -> Result<FunctionSpec, LocalError> {
        let empty = Map::new();
        let props = match resource.get("Properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(LocalError::invalid(format!("{at}.Properties"), "not a mapping")),
        };
        let globals = self.globals_function();
        let setting = |key: &str| props.get(key).or_else(|| globals.and_then(|g| g.get(key)));
        let code_uri = match setting("CodeUri") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(LocalError::invalid(
                    format!("{at}.Properties.CodeUri"),
                    "only a local directory (a string) is supported",
                ));
            }
            None => return Err(LocalError::invalid(format!("{at}.Properties"), "no CodeUri")),
        };
        let number = |key: &str, default: u64| match setting(key) {
            Some(v) => self.static_u64(v, &format!("{at}.{key}")),
            None => Ok(default),
        };
        Ok(FunctionSpec {
            logical_id: id.to_owned(),
            binary: binary(resource, &code_uri, at)?,
            timeout_seconds: number("Timeout", DEFAULT_TIMEOUT_SECONDS)?,
            memory_mb: number("MemorySize", DEFAULT_MEMORY_MB)?,
            events: self.events(props.get("Events"), &format!("{at}.Properties.Events"))?,
            code_uri,
        })
    }

    fn events(&self, events: Option<&Value>, at: &str) -> Result<Vec<EventSource>, LocalError> {
        match events {
            None => Ok(Vec::new()),
            Some(Value::Object(events)) => {
                events.iter().map(|(name, e)| self.event(name, e, &format!("{at}.{name}"))).collect()
            }
            Some(_) => Err(LocalError::invalid(at, "not a mapping")),
        }
    }

    fn event(&self, name: &str, event: &Value, at: &str) -> Result<EventSource, LocalError> {
        let kind = event
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| LocalError::invalid(at, "event has no Type"))?;
        let empty = Value::Object(Map::new());
        let props = EventProps {
            template: self,
            props: event.get("Properties").unwrap_or(&empty),
            at: format!("{at}.Properties"),
        };
        match kind {
            "HttpApi" => Ok(EventSource::HttpApi {
                method: props.str("Method")?.map_or_else(|| "ANY".to_owned(), |m| m.to_ascii_uppercase()),
                path: props.str("Path")?.unwrap_or_else(|| "$default".to_owned()),
            }),
            "Schedule" | "ScheduleV2" => props.schedule(name, kind),
            "DynamoDB" => props.dynamodb(),
            "SQS" => Ok(EventSource::Sqs {
                queue_logical_id: props.get_att_target("Queue", "Arn")?,
                batch_size: props.batch_size(DEFAULT_SQS_BATCH_SIZE)?,
            }),
            other => Err(LocalError::invalid(
                props.at,
                format!(
                    "event type {other} is not supported (HttpApi, Schedule, ScheduleV2, DynamoDB, SQS are)"
                ),
            )),
        }
    }
}

/// `Metadata.BuildProperties.Binary`, else the last segment of `CodeUri`.
fn binary(resource: &Value, code_uri: &str, at: &str) -> Result<String, LocalError> {
    match resource.pointer("/Metadata/BuildProperties/Binary") {
        Some(Value::String(b)) => Ok(b.clone()),
        Some(_) => Err(LocalError::invalid(format!("{at}.Metadata.BuildProperties.Binary"), "not a string")),
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
            }),
    }
}

/// The `Properties` of one event, with their template path.
struct EventProps<'a> {
    template: &'a Template,
    props: &'a Value,
    at: String,
}

impl EventProps<'_> {
    fn str(&self, key: &str) -> Result<Option<String>, LocalError> {
        match self.props.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(LocalError::invalid(format!("{}.{key}", self.at), "must be a plain string")),
        }
    }

    fn batch_size(&self, default: u32) -> Result<u32, LocalError> {
        let at = format!("{}.BatchSize", self.at);
        match self.props.get("BatchSize") {
            None => Ok(default),
            Some(v) => {
                let n = self.template.static_u64(v, &at)?;
                u32::try_from(n).map_err(|_| LocalError::invalid(at, "too large"))
            }
        }
    }

    fn get_att_target(&self, key: &str, attribute: &str) -> Result<String, LocalError> {
        self.template.get_att_target(self.props.get(key), attribute, &format!("{}.{key}", self.at))
    }

    /// `Schedule` (EventBridge rule) or `ScheduleV2` (EventBridge Scheduler).
    fn schedule(&self, name: &str, kind: &str) -> Result<EventSource, LocalError> {
        let key = if kind == "Schedule" { "Schedule" } else { "ScheduleExpression" };
        let expression = self.str(key)?.ok_or_else(|| LocalError::invalid(&self.at, format!("no {key}")))?;
        let input =
            match self.props.get("Input") {
                None => None,
                Some(Value::String(text)) => Some(serde_json::from_str(text).map_err(|e| {
                    LocalError::invalid(format!("{}.Input", self.at), format!("not JSON: {e}"))
                })?),
                Some(other) => Some(other.clone()),
            };
        Ok(EventSource::Schedule { name: name.to_owned(), expression, input })
    }

    /// A `DynamoDB` stream event with its `FilterCriteria`.
    fn dynamodb(&self) -> Result<EventSource, LocalError> {
        let table_logical_id = self.get_att_target("Stream", "StreamArn")?;
        let filters = match self.props.pointer("/FilterCriteria/Filters") {
            None => Vec::new(),
            Some(Value::Array(filters)) => filters.clone(),
            Some(_) => {
                return Err(LocalError::invalid(format!("{}.FilterCriteria.Filters", self.at), "not a list"));
            }
        };
        let filter_patterns = filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let at = format!("{}.FilterCriteria.Filters[{i}].Pattern", self.at);
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
            batch_size: self.batch_size(DEFAULT_STREAM_BATCH_SIZE)?,
            filter_patterns,
        })
    }
}
