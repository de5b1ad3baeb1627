//! Creating the template's tables, keys, queues and buckets on the configured endpoint, in
//! dependency order, and deleting them again.

mod bucket;
mod key;
mod queue;
mod table;

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use serde_json::Value;

use crate::error::LocalError;
use crate::props::Props;
use crate::resolve::references;
use crate::stack::{Physical, ResourceKind, Stack};
use crate::template::Template;

const TABLE_TYPE: &str = "AWS::DynamoDB::Table";
const KEY_TYPE: &str = "AWS::KMS::Key";
const ALIAS_TYPE: &str = "AWS::KMS::Alias";
const QUEUE_TYPE: &str = "AWS::SQS::Queue";
const BUCKET_TYPE: &str = "AWS::S3::Bucket";
/// KMS refuses a shorter deletion window.
const MIN_KEY_DELETION_DAYS: i32 = 7;

/// Creates every DynamoDB table, KMS key (with rotation) and alias, and SQS queue the
/// template declares, named `<LogicalId>-<suffix>` (FIFO queues end in `.fifo`), in
/// dependency order (keys before the tables they encrypt, DLQs before the queues that
/// redrive to them). A `TableName`/`QueueName` in the template is ignored so parallel
/// stacks never collide. Anything else in the template (functions, the HTTP API) is not
/// provisioned. On failure, what was already created is torn down again.
pub async fn provision(template: &Template, sdk: &SdkConfig, suffix: &str) -> Result<Stack, LocalError> {
    if suffix.is_empty()
        || suffix.len() > 32
        || !suffix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(LocalError::invalid(
            "suffix",
            format!("{suffix:?}: use 1 to 32 characters of [A-Za-z0-9_-]"),
        ));
    }
    let order = provision_order(template)?;
    let clients = Clients::new(sdk);
    let region = sdk.region().map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let mut stack = Stack { suffix: suffix.to_owned(), resources: BTreeMap::new() };
    for (id, kind) in order {
        let created = create(&clients, template, &stack, &region, &id, kind).await;
        match created {
            Ok(physical) => {
                tracing::debug!(logical_id = %id, name = %physical.name, "provisioned");
                stack.resources.insert(id, physical);
            }
            Err(err) => {
                stack.teardown(sdk).await;
                return Err(err);
            }
        }
    }
    Ok(stack)
}

/// A random suffix for one test's or one local stack's resources.
pub fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The SDK configuration from the environment, refusing to run without
/// `AWS_ENDPOINT_URL` so nothing is ever provisioned on a real account by accident.
/// `scripts/test` sets it to the local emulator.
pub async fn emulator_sdk_config() -> Result<SdkConfig, LocalError> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => {}
        _ => {
            return Err(LocalError::NoEndpoint(
                "AWS_ENDPOINT_URL is not set; run the tests through scripts/test".to_owned(),
            ));
        }
    }
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client()).load().await)
}

/// The HTTP client of the local stack's AWS clients: rustls on `ring`, as the
/// functions' (the SDK's default client would bring in aws-lc).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

impl Stack {
    /// Deletes what `provision` created: aliases, tables and queues; keys are scheduled
    /// for deletion with the shortest window KMS allows. Best effort: failures are logged.
    pub async fn teardown(&self, sdk: &SdkConfig) {
        let clients = Clients::new(sdk);
        let of = |kind: ResourceKind| self.resources.iter().filter(move |(_, p)| p.kind == kind);
        for (id, p) in of(ResourceKind::Alias) {
            let r = clients.kms.delete_alias().alias_name(&p.name).send().await;
            log_teardown(id, r.err());
        }
        for (id, p) in of(ResourceKind::Table) {
            let r = clients.dynamodb.delete_table().table_name(&p.name).send().await;
            log_teardown(id, r.err());
        }
        for (id, p) in of(ResourceKind::Queue) {
            let r = clients.sqs.delete_queue().queue_url(p.url.as_deref().unwrap_or_default()).send().await;
            log_teardown(id, r.err());
        }
        for (id, p) in of(ResourceKind::Bucket) {
            let r = bucket::delete(&clients.s3, &p.name).await;
            log_teardown(id, r.err());
        }
        for (id, p) in of(ResourceKind::Key) {
            let r = clients
                .kms
                .schedule_key_deletion()
                .key_id(&p.name)
                .pending_window_in_days(MIN_KEY_DELETION_DAYS)
                .send()
                .await;
            log_teardown(id, r.err());
        }
    }
}

fn log_teardown(logical_id: &str, error: Option<impl std::error::Error>) {
    if let Some(e) = error {
        tracing::warn!(logical_id, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "teardown failed");
    }
}

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
}

impl Clients {
    fn new(sdk: &SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            // Path-style: an endpoint (the emulator) serves every bucket at one address.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build(),
            ),
        }
    }
}

fn aws_error(operation: &'static str, resource: &str, error: impl std::error::Error) -> LocalError {
    LocalError::Aws {
        operation,
        resource: resource.to_owned(),
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string(),
    }
}

fn kind_of(resource_type: &str) -> Option<ResourceKind> {
    match resource_type {
        TABLE_TYPE => Some(ResourceKind::Table),
        KEY_TYPE => Some(ResourceKind::Key),
        ALIAS_TYPE => Some(ResourceKind::Alias),
        QUEUE_TYPE => Some(ResourceKind::Queue),
        BUCKET_TYPE => Some(ResourceKind::Bucket),
        _ => None,
    }
}

/// The provisionable resources, each after the ones it refers to (ties by logical id).
fn provision_order(template: &Template) -> Result<Vec<(String, ResourceKind)>, LocalError> {
    let mut pending: BTreeMap<String, (ResourceKind, BTreeSet<String>)> = BTreeMap::new();
    for (id, resource) in template.resources() {
        let Some(kind) = template.resource_type(id).and_then(kind_of) else {
            continue;
        };
        let deps = dependencies(resource)
            .into_iter()
            .filter(|r| r != id && template.resource_type(r).and_then(kind_of).is_some())
            .collect();
        pending.insert(id.clone(), (kind, deps));
    }
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    while !pending.is_empty() {
        let ready: Vec<String> =
            pending.iter().filter(|(_, (_, deps))| deps.is_subset(&done)).map(|(id, _)| id.clone()).collect();
        if ready.is_empty() {
            let cycle = pending.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(LocalError::invalid("Resources", format!("circular references among {cycle}")));
        }
        for id in ready {
            if let Some((kind, _)) = pending.remove(&id) {
                order.push((id.clone(), kind));
                done.insert(id);
            }
        }
    }
    Ok(order)
}

/// The logical ids a resource's properties refer to, and its `DependsOn`.
fn dependencies(resource: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    if let Some(props) = resource.get("Properties") {
        references(props, &mut refs);
    }
    match resource.get("DependsOn") {
        Some(Value::String(d)) => refs.push(d.clone()),
        Some(Value::Array(ds)) => refs.extend(ds.iter().filter_map(|d| d.as_str().map(str::to_owned))),
        _ => {}
    }
    refs
}

async fn create(
    clients: &Clients,
    template: &Template,
    stack: &Stack,
    region: &str,
    id: &str,
    kind: ResourceKind,
) -> Result<Physical, LocalError> {
    let context = stack.context(template, template.parameter_defaults(), region.to_owned());
    let raw = template
        .resources()
        .get(id)
        .and_then(|r| r.get("Properties"))
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let properties = context.resolve(&raw).map_err(|reason| LocalError::UnresolvableProperty {
        resource: id.to_owned(),
        property: "Properties".to_owned(),
        reason,
    })?;
    let at = format!("Resources.{id}.Properties");
    let props = Props::new(&properties, &at)?;
    let name = format!("{id}-{}", stack.suffix);
    match kind {
        ResourceKind::Table => table::create(&clients.dynamodb, props, &name).await,
        ResourceKind::Key => key::create_key(&clients.kms, props, &name).await,
        ResourceKind::Alias => key::create_alias(&clients.kms, props, stack, region).await,
        ResourceKind::Queue => queue::create(&clients.sqs, props, &name).await,
        ResourceKind::Bucket => bucket::create(&clients.s3, props, &name).await,
    }
}

fn parse_enum<T, E: std::fmt::Display>(
    value: &str,
    at: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, LocalError> {
    parse(value).map_err(|e| LocalError::invalid(at, format!("{value:?}: {e}")))
}

fn built<T>(result: Result<T, impl std::fmt::Display>, at: &str) -> Result<T, LocalError> {
    result.map_err(|e| LocalError::invalid(at, e.to_string()))
}
