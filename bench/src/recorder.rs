//! What an operation sent and what it changed: an SDK interceptor that keeps
//! every request body and its answer's body (DynamoDB, KMS and SQS speak JSON),
//! and a reader of the table's stream that returns the records written since
//! the last call (the item before and after each change, as DynamoDB streams
//! them: `NEW_AND_OLD_IMAGES`).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// One request on the wire and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub service: String,
    pub operation: String,
    pub request: Value,
    /// Bytes of the request body.
    pub request_bytes: usize,
    pub response: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Exchange>>>);

#[derive(Debug, Clone)]
struct Sent(Exchange);

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl Recorder {
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn json(bytes: Option<&[u8]>) -> Value {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null)
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| (m.service().to_ascii_lowercase(), m.name().to_owned()))
            .unwrap_or_default();
        let body = context.request().body().bytes();
        let exchange = Exchange {
            service,
            operation,
            request: json(body),
            request_bytes: body.map_or(0, <[u8]>::len),
            response: Value::Null,
        };
        cfg.interceptor_state().store_put(Sent(exchange));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Sent(mut exchange)) = cfg.load::<Sent>().cloned() {
            exchange.response = json(context.response().and_then(|r| r.body().bytes()));
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(exchange);
            cfg.interceptor_state().unset::<Sent>();
        }
        Ok(())
    }
}

/// The table's stream, every record (no filter), from the trim horizon.
pub struct StreamLog {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    seen: Mutex<HashSet<String>>,
}

/// One change: the item's keys, its image before and after (DynamoDB JSON).
#[derive(Debug, Clone)]
pub struct Change {
    pub event_name: String,
    pub keys: Value,
    pub before: Option<serde_json::Map<String, Value>>,
    pub after: Option<serde_json::Map<String, Value>>,
}

fn image(
    value: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>,
) -> Option<serde_json::Map<String, Value>> {
    let value = value.filter(|m| !m.is_empty())?;
    let item: serde_dynamo::Item = value.clone().into();
    serde_json::to_value(item).ok().and_then(|v| v.as_object().cloned())
}

impl StreamLog {
    pub fn new(sdk: &aws_config::SdkConfig, arn: &str) -> Self {
        Self {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            arn: arn.to_owned(),
            seen: Mutex::default(),
        }
    }

    /// The records written since the last call, in shard order.
    pub async fn changes(&self) -> Result<Vec<Change>, String> {
        let mut changes = Vec::new();
        for shard in caas_local::events::shard_ids(&self.client, &self.arn).await? {
            let mut iterator = caas_local::events::trim_horizon(&self.client, &self.arn, &shard).await?;
            while let Some(current) = iterator {
                let output = self
                    .client
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .map_err(|e| format!("get records: {e}"))?;
                let records = output.records.unwrap_or_default();
                for record in &records {
                    let id = record.event_id().unwrap_or_default().to_owned();
                    if !self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
                        continue;
                    }
                    let Some(part) = record.dynamodb() else { continue };
                    let keys = image(part.keys()).map_or(Value::Null, Value::Object);
                    changes.push(Change {
                        event_name: record.event_name().map(|e| e.as_str().to_owned()).unwrap_or_default(),
                        keys,
                        before: image(part.old_image()),
                        after: image(part.new_image()),
                    });
                }
                iterator = if records.is_empty() { None } else { output.next_shard_iterator };
            }
        }
        Ok(changes)
    }
}
