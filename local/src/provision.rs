//! Creating the template's tables, keys and queues on the configured endpoint, and
//! resolving a function's environment against what was created.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::Value;

use crate::error::LocalError;
use crate::props::Props;
use crate::resolve::{Context, references};
use crate::template::{FUNCTION_TYPE, Template};

const TABLE_TYPE: &str = "AWS::DynamoDB::Table";
const KEY_TYPE: &str = "AWS::KMS::Key";
const ALIAS_TYPE: &str = "AWS::KMS::Alias";
const QUEUE_TYPE: &str = "AWS::SQS::Queue";
/// KMS refuses a shorter deletion window.
const MIN_KEY_DELETION_DAYS: i32 = 7;
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResourceKind {
    Table,
    Key,
    Queue,
    Alias,
}

/// A created resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Physical {
    pub kind: ResourceKind,
    /// Table name, key id, queue name or alias name (`alias/...`).
    pub name: String,
    pub arn: String,
    /// Queues only.
    pub url: Option<String>,
    /// Tables with a stream only.
    pub stream_arn: Option<String>,
}

/// What `provision` created, by logical id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stack {
    pub suffix: String,
    pub resources: BTreeMap<String, Physical>,
}

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
    Ok(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
}

impl Stack {
    /// `Globals.Function.Environment` merged with the function's own `Environment`
    /// (the function's wins), every intrinsic resolved against this stack: parameters
    /// (default, or `parameter_overrides`), resources (table name, key id, queue URL,
    /// alias name), pseudo parameters, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join`.
    pub fn function_env(
        &self,
        template: &Template,
        function_logical_id: &str,
        parameter_overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, LocalError> {
        let resource = template
            .resources()
            .get(function_logical_id)
            .filter(|_| template.resource_type(function_logical_id) == Some(FUNCTION_TYPE))
            .ok_or_else(|| LocalError::UnknownFunction(function_logical_id.to_owned()))?;
        if let Some(unknown) = parameter_overrides.keys().find(|k| !template.parameters().contains_key(*k)) {
            return Err(LocalError::UnknownParameter(unknown.clone()));
        }
        let mut params = template.parameter_defaults();
        params.extend(parameter_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let context = Context {
            template,
            resources: &self.resources,
            params,
            region: self.region(),
            stack_name: format!("caas-{}", self.suffix),
        };

        let unresolvable = |variable: &str, reason: String| LocalError::Unresolvable {
            function: function_logical_id.to_owned(),
            variable: variable.to_owned(),
            reason,
        };
        let variables_of = |environment: Option<&Value>| -> Result<Vec<(String, Value)>, LocalError> {
            match environment.and_then(|e| e.get("Variables")) {
                None => Ok(Vec::new()),
                Some(Value::Object(vars)) => Ok(vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                Some(_) => Err(unresolvable("*", "Environment.Variables is not a mapping".to_owned())),
            }
        };
        let mut raw: BTreeMap<String, Value> = BTreeMap::new();
        raw.extend(variables_of(template.globals_function().and_then(|g| g.get("Environment")))?);
        raw.extend(variables_of(resource.pointer("/Properties/Environment"))?);

        let mut env = BTreeMap::new();
        for (name, value) in raw {
            if value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
                continue;
            }
            let resolved = context.resolve_string(&value).map_err(|reason| unresolvable(&name, reason))?;
            env.insert(name, resolved);
        }
        Ok(env)
    }

    /// The first table, by logical id.
    pub fn table_name(&self) -> Option<&str> {
        self.resources.values().find(|p| p.kind == ResourceKind::Table).map(|p| p.name.as_str())
    }

    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.resources
            .get(logical_id)
            .filter(|p| p.kind == ResourceKind::Queue)
            .and_then(|p| p.url.as_deref())
    }

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

    /// The region the resources live in, read from their ARNs.
    fn region(&self) -> String {
        self.resources
            .values()
            .filter_map(|p| p.arn.split(':').nth(3))
            .find(|r| !r.is_empty())
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned())
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
}

impl Clients {
    fn new(sdk: &SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
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
        let mut refs = Vec::new();
        if let Some(props) = resource.get("Properties") {
            references(props, &mut refs);
        }
        match resource.get("DependsOn") {
            Some(Value::String(d)) => refs.push(d.clone()),
            Some(Value::Array(ds)) => refs.extend(ds.iter().filter_map(|d| d.as_str().map(str::to_owned))),
            _ => {}
        }
        let deps = refs
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

async fn create(
    clients: &Clients,
    template: &Template,
    stack: &Stack,
    region: &str,
    id: &str,
    kind: ResourceKind,
) -> Result<Physical, LocalError> {
    let context = Context {
        template,
        resources: &stack.resources,
        params: template.parameter_defaults(),
        region: region.to_owned(),
        stack_name: format!("caas-{}", stack.suffix),
    };
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
        ResourceKind::Table => create_table(&clients.dynamodb, props, &name).await,
        ResourceKind::Key => create_key(&clients.kms, props, &name).await,
        ResourceKind::Alias => create_alias(&clients.kms, props, stack, region).await,
        ResourceKind::Queue => create_queue(&clients.sqs, props, &name).await,
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

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    props: Props<'_>,
    name: &str,
) -> Result<Physical, LocalError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        LocalSecondaryIndex, PointInTimeRecoverySpecification, Projection, ProjectionType,
        ProvisionedThroughput, ScalarAttributeType, SseSpecification, SseType, StreamSpecification,
        StreamViewType, TimeToLiveSpecification,
    };

    let key_schema = |props: Props<'_>| -> Result<Vec<KeySchemaElement>, LocalError> {
        props
            .list("KeySchema")?
            .into_iter()
            .map(|(at, v)| {
                let e = Props::new(v, &at.0)?;
                let key_type = parse_enum(e.req_str("KeyType")?, &at.0, KeyType::try_parse)?;
                built(
                    KeySchemaElement::builder()
                        .attribute_name(e.req_str("AttributeName")?)
                        .key_type(key_type)
                        .build(),
                    &at.0,
                )
            })
            .collect()
    };
    let projection = |props: Props<'_>| -> Result<Projection, LocalError> {
        let Some(value) = props.get("Projection") else {
            return Ok(Projection::builder().projection_type(ProjectionType::KeysOnly).build());
        };
        let at = format!("{}.Projection", props.at());
        let p = Props::new(value, &at)?;
        let mut builder = Projection::builder();
        if let Some(t) = p.str("ProjectionType")? {
            builder = builder.projection_type(parse_enum(t, &at, ProjectionType::try_parse)?);
        }
        for (at, attr) in p.list("NonKeyAttributes")? {
            let attr = attr.as_str().ok_or_else(|| LocalError::invalid(&at.0, "not a string"))?;
            builder = builder.non_key_attributes(attr);
        }
        Ok(builder.build())
    };
    let throughput = |props: Props<'_>| -> Result<Option<ProvisionedThroughput>, LocalError> {
        let Some(value) = props.get("ProvisionedThroughput") else {
            return Ok(None);
        };
        let at = format!("{}.ProvisionedThroughput", props.at());
        let p = Props::new(value, &at)?;
        built(
            ProvisionedThroughput::builder()
                .set_read_capacity_units(p.int("ReadCapacityUnits")?)
                .set_write_capacity_units(p.int("WriteCapacityUnits")?)
                .build(),
            &at,
        )
        .map(Some)
    };

    let mut request = client.create_table().table_name(name);
    for (at, v) in props.list("AttributeDefinitions")? {
        let d = Props::new(v, &at.0)?;
        let attribute_type = parse_enum(d.req_str("AttributeType")?, &at.0, ScalarAttributeType::try_parse)?;
        request = request.attribute_definitions(built(
            AttributeDefinition::builder()
                .attribute_name(d.req_str("AttributeName")?)
                .attribute_type(attribute_type)
                .build(),
            &at.0,
        )?);
    }
    request = request.set_key_schema(Some(key_schema(props)?));
    for (at, v) in props.list("GlobalSecondaryIndexes")? {
        let g = Props::new(v, &at.0)?;
        request = request.global_secondary_indexes(built(
            GlobalSecondaryIndex::builder()
                .index_name(g.req_str("IndexName")?)
                .set_key_schema(Some(key_schema(g)?))
                .projection(projection(g)?)
                .set_provisioned_throughput(throughput(g)?)
                .build(),
            &at.0,
        )?);
    }
    for (at, v) in props.list("LocalSecondaryIndexes")? {
        let l = Props::new(v, &at.0)?;
        request = request.local_secondary_indexes(built(
            LocalSecondaryIndex::builder()
                .index_name(l.req_str("IndexName")?)
                .set_key_schema(Some(key_schema(l)?))
                .projection(projection(l)?)
                .build(),
            &at.0,
        )?);
    }
    let billing = props.str("BillingMode")?.unwrap_or("PROVISIONED");
    request = request
        .billing_mode(parse_enum(billing, props.at(), BillingMode::try_parse)?)
        .set_provisioned_throughput(throughput(props)?);
    if let Some(value) = props.get("StreamSpecification") {
        let at = format!("{}.StreamSpecification", props.at());
        let s = Props::new(value, &at)?;
        let view = parse_enum(s.req_str("StreamViewType")?, &at, StreamViewType::try_parse)?;
        request = request.stream_specification(built(
            StreamSpecification::builder().stream_enabled(true).stream_view_type(view).build(),
            &at,
        )?);
    }
    if let Some(value) = props.get("SSESpecification") {
        let at = format!("{}.SSESpecification", props.at());
        let s = Props::new(value, &at)?;
        let mut sse = SseSpecification::builder().set_enabled(s.bool("SSEEnabled")?);
        if let Some(t) = s.str("SSEType")? {
            sse = sse.sse_type(parse_enum(t, &at, SseType::try_parse)?);
        }
        request = request.sse_specification(
            sse.set_kms_master_key_id(s.str("KMSMasterKeyId")?.map(str::to_owned)).build(),
        );
    }

    let created = request.send().await.map_err(|e| aws_error("CreateTable", name, e))?;
    let description = created.table_description();
    let arn = description.and_then(|d| d.table_arn()).unwrap_or_default().to_owned();
    let stream_arn = description.and_then(|d| d.latest_stream_arn()).map(str::to_owned);

    use aws_sdk_dynamodb::client::Waiters;
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(TABLE_ACTIVE_TIMEOUT)
        .await
        .map_err(|e| aws_error("DescribeTable (waiting for ACTIVE)", name, e))?;

    if let Some(value) = props.get("TimeToLiveSpecification") {
        let at = format!("{}.TimeToLiveSpecification", props.at());
        let t = Props::new(value, &at)?;
        if t.bool("Enabled")?.unwrap_or(false) {
            let spec = built(
                TimeToLiveSpecification::builder()
                    .attribute_name(t.req_str("AttributeName")?)
                    .enabled(true)
                    .build(),
                &at,
            )?;
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| aws_error("UpdateTimeToLive", name, e))?;
        }
    }
    if let Some(value) = props.get("PointInTimeRecoverySpecification") {
        let at = format!("{}.PointInTimeRecoverySpecification", props.at());
        let p = Props::new(value, &at)?;
        if p.bool("PointInTimeRecoveryEnabled")?.unwrap_or(false) {
            let days = p.int("RecoveryPeriodInDays")?.map(i32::try_from).transpose();
            let days = days.map_err(|_| LocalError::invalid(&at, "RecoveryPeriodInDays out of range"))?;
            let spec = built(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .set_recovery_period_in_days(days)
                    .build(),
                &at,
            )?;
            client
                .update_continuous_backups()
                .table_name(name)
                .point_in_time_recovery_specification(spec)
                .send()
                .await
                .map_err(|e| aws_error("UpdateContinuousBackups", name, e))?;
        }
    }
    Ok(Physical { kind: ResourceKind::Table, name: name.to_owned(), arn, url: None, stream_arn })
}

async fn create_key(
    client: &aws_sdk_kms::Client,
    props: Props<'_>,
    name: &str,
) -> Result<Physical, LocalError> {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};

    // The key policy is left to the endpoint's default (the account root may use the
    // key through IAM), which is what the template's policies amount to locally.
    let mut request = client.create_key().description(name);
    if let Some(spec) = props.str("KeySpec")? {
        request = request.key_spec(parse_enum(spec, props.at(), KeySpec::try_parse)?);
    }
    if let Some(usage) = props.str("KeyUsage")? {
        request = request.key_usage(parse_enum(usage, props.at(), KeyUsageType::try_parse)?);
    }
    let created = request.send().await.map_err(|e| aws_error("CreateKey", name, e))?;
    let metadata = created.key_metadata().ok_or_else(|| {
        aws_error("CreateKey", name, std::io::Error::other("no KeyMetadata in the response"))
    })?;
    let key_id = metadata.key_id().to_owned();
    let arn = metadata.arn().unwrap_or_default().to_owned();

    if props.bool("EnableKeyRotation")?.unwrap_or(false) {
        let days = props.int("RotationPeriodInDays")?.map(i32::try_from).transpose();
        let days = days.map_err(|_| LocalError::invalid(props.at(), "RotationPeriodInDays out of range"))?;
        client
            .enable_key_rotation()
            .key_id(&key_id)
            .set_rotation_period_in_days(days)
            .send()
            .await
            .map_err(|e| aws_error("EnableKeyRotation", name, e))?;
    }
    Ok(Physical { kind: ResourceKind::Key, name: key_id, arn, url: None, stream_arn: None })
}

async fn create_alias(
    client: &aws_sdk_kms::Client,
    props: Props<'_>,
    stack: &Stack,
    region: &str,
) -> Result<Physical, LocalError> {
    let alias = props.req_str("AliasName")?;
    let target = props.req_str("TargetKeyId")?;
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(target)
        .send()
        .await
        .map_err(|e| aws_error("CreateAlias", alias, e))?;
    // An alias ARN is its key's ARN with `key/<id>` replaced by the alias name.
    let arn = stack
        .resources
        .values()
        .find(|p| p.kind == ResourceKind::Key && (p.name == target || p.arn == target))
        .and_then(|key| key.arn.rsplit_once(":key/"))
        .map(|(prefix, _)| format!("{prefix}:{alias}"))
        .unwrap_or_else(|| format!("arn:aws:kms:{region}:{}:{alias}", crate::resolve::ACCOUNT_ID));
    Ok(Physical { kind: ResourceKind::Alias, name: alias.to_owned(), arn, url: None, stream_arn: None })
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    props: Props<'_>,
    name: &str,
) -> Result<Physical, LocalError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;

    let fifo = props.bool("FifoQueue")?.unwrap_or(false);
    let name = if fifo { format!("{name}.fifo") } else { name.to_owned() };
    let mut attributes: HashMap<A, String> = HashMap::new();
    if fifo {
        attributes.insert(A::FifoQueue, "true".to_owned());
    }
    for (key, attribute) in [
        ("ContentBasedDeduplication", A::ContentBasedDeduplication),
        ("SqsManagedSseEnabled", A::SqsManagedSseEnabled),
    ] {
        if let Some(b) = props.bool(key)? {
            attributes.insert(attribute, b.to_string());
        }
    }
    for (key, attribute) in [
        ("VisibilityTimeout", A::VisibilityTimeout),
        ("MessageRetentionPeriod", A::MessageRetentionPeriod),
        ("DelaySeconds", A::DelaySeconds),
        ("MaximumMessageSize", A::MaximumMessageSize),
        ("ReceiveMessageWaitTimeSeconds", A::ReceiveMessageWaitTimeSeconds),
        ("KmsDataKeyReusePeriodSeconds", A::KmsDataKeyReusePeriodSeconds),
    ] {
        if let Some(n) = props.int(key)? {
            attributes.insert(attribute, n.to_string());
        }
    }
    for (key, attribute) in [
        ("KmsMasterKeyId", A::KmsMasterKeyId),
        ("DeduplicationScope", A::DeduplicationScope),
        ("FifoThroughputLimit", A::FifoThroughputLimit),
    ] {
        if let Some(s) = props.str(key)? {
            attributes.insert(attribute, s.to_owned());
        }
    }
    for (key, attribute) in
        [("RedrivePolicy", A::RedrivePolicy), ("RedriveAllowPolicy", A::RedriveAllowPolicy)]
    {
        match props.get(key) {
            None => {}
            Some(Value::String(s)) => {
                attributes.insert(attribute, s.clone());
            }
            Some(policy) => {
                attributes.insert(attribute, policy.to_string());
            }
        }
    }

    let created = client
        .create_queue()
        .queue_name(&name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| aws_error("CreateQueue", &name, e))?;
    let url = created.queue_url().unwrap_or_default().to_owned();
    let described = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error("GetQueueAttributes", &name, e))?;
    let arn = described.attributes().and_then(|a| a.get(&A::QueueArn)).cloned().unwrap_or_default();
    Ok(Physical { kind: ResourceKind::Queue, name, arn, url: Some(url), stream_arn: None })
}
