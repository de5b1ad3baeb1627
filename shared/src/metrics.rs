//! CloudWatch Embedded Metric Format: one JSON object per line on stdout, which
//! CloudWatch Logs turns into metrics (no PutMetricData call, no extra latency).
//!
//! ```text
//! {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"CAAS",
//!   "Dimensions":[["Service"]],"Metrics":[{"Name":"BackupsCreated","Unit":"Count"}]}]},
//!  "Service":"backup","BackupsCreated":1,"table":"caas-Table-x"}
//! ```
//!
//! Dimensions are low-cardinality names the alarms in template.yaml match
//! exactly; anything else a line should carry for searching goes in
//! [`MetricSet::property`] (not a dimension, costs nothing).
//!
//! Lines go to stdout, not through `tracing`: the log subscriber wraps its
//! events in its own JSON, and an EMF document must be the whole line. Tests
//! install a [`set_sink`] to read what would reach CloudWatch.

use serde_json::{Map, Value, json};
use std::sync::RwLock;
use time::OffsetDateTime;

/// The namespace of every metric of this project.
pub const NAMESPACE: &str = "CAAS";

/// CloudWatch units (a subset; add as needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    Bytes,
    Percent,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// One EMF document: a namespace, one dimension set, metrics and properties.
#[derive(Debug, Clone)]
pub struct MetricSet {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, f64, Unit)>,
    properties: Map<String, Value>,
}

impl MetricSet {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    /// The project namespace with the `Service` dimension set.
    pub fn service(service: &str) -> Self {
        Self::new(NAMESPACE).dimension("Service", service)
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    /// A metric value. Non-finite values are dropped (CloudWatch rejects them).
    pub fn metric(mut self, name: impl Into<String>, value: f64, unit: Unit) -> Self {
        if value.is_finite() {
            self.metrics.push((name.into(), value, unit));
        }
        self
    }

    pub fn count(self, name: impl Into<String>, value: u64) -> Self {
        // Counts of anything we measure fit an f64 exactly.
        self.metric(name, value as f64, Unit::Count)
    }

    /// A searchable field of the log line that is not a dimension.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The EMF document for `at`.
    pub fn to_json(&self, at: OffsetDateTime) -> Value {
        let timestamp_ms = crate::clock::epoch_ms(at);
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| name.as_str()).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        // Properties first: dimensions and metrics win on a name clash.
        root.extend(self.properties.clone());
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::from(value.as_str()));
        }
        for (name, value, _) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes the document as one line to the sink (stdout unless replaced).
    pub fn emit(&self, at: OffsetDateTime) {
        if self.is_empty() {
            return;
        }
        let line = self.to_json(at).to_string();
        let sink = SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match sink.as_ref() {
            Some(sink) => sink(&line),
            None => write_stdout(&line),
        }
    }
}

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Replaces where EMF lines go (tests read them; production keeps stdout).
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let mut slot = SINK.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(Box::new(sink));
}

fn write_stdout(line: &str) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    // One write of the whole line, so concurrent log output cannot split it.
    let mut buffer = String::with_capacity(line.len() + 1);
    buffer.push_str(line);
    buffer.push('\n');
    let _ = lock.write_all(buffer.as_bytes());
    let _ = lock.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_the_emf_shape() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let doc = MetricSet::service("backup")
            .count("BackupsCreated", 2)
            .metric("PitrLagSeconds", 12.5, Unit::Seconds)
            .metric("Broken", f64::NAN, Unit::None)
            .property("table", "t1")
            .to_json(at);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CAAS");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "BackupsCreated", "Unit": "Count"}, {"Name": "PitrLagSeconds", "Unit": "Seconds"}])
        );
        assert_eq!(doc["Service"], "backup");
        assert_eq!(doc["BackupsCreated"], 2.0);
        assert_eq!(doc["PitrLagSeconds"], 12.5);
        assert_eq!(doc["table"], "t1");
        assert!(doc.get("Broken").is_none(), "non-finite values are dropped");
    }

    #[test]
    fn several_dimensions_form_one_set() {
        let doc = MetricSet::new("X")
            .dimension("Service", "migrate")
            .dimension("Direction", "up")
            .count("Items", 1)
            .to_json(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service", "Direction"]]));
        assert_eq!(doc["Direction"], "up");
    }
}
