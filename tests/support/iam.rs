//! Records what each function's handler asks of AWS, for the IAM conformance
//! test (tests/iam.rs).
//!
//! Every App a test builds for a function ([`crate::TestStack::app`]) gets SDK
//! clients carrying a [`CallRecorder`] tagged with that function's logical id,
//! so a call is attributed to the function whose App (and so whose warm
//! container) made it; calls a test makes itself through `stack.clients` are
//! not attributed to anyone. Each request on the wire (retries included) is
//! turned into the IAM authorizations it needs — `(action, resource ARN)`
//! pairs, e.g. a `TransactWriteItems` into one `dynamodb:PutItem` /
//! `UpdateItem` / `ConditionCheckItem` / `DeleteItem` per item — read from the
//! request's JSON body (DynamoDB, KMS and SQS all speak JSON), or for the
//! API Gateway Management API from its path (`/<stage>/@connections/<id>`).
//!
//! Resource names are canonical: a test stack's physical names
//! (`Table-<suffix>`) are replaced by their logical ids (`Table`), region and
//! account are fixed, so records of every test stack and every test process
//! compare with template.yaml resolved the same way.
//!
//! A KMS call naming its key by id gets the key's aliases at the time
//! (the emulator's, as this process's `CreateAlias` / `UpdateAlias` /
//! `DeleteAlias` calls set them), so a policy granting by
//! `kms:ResourceAliases` can be checked for keys created at runtime.
//!
//! Records are written only when `CAAS_IAM_CALLS` names a directory
//! (scripts/test sets it): one JSON line per distinct call, in
//! `<dir>/<test binary>-<pid>.jsonl`.

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use caas::clients::Clients;
use caas_local::{ResourceKind, Stack};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The environment variable naming the directory records are written to.
pub const RECORD_DIR_VAR: &str = "CAAS_IAM_CALLS";
/// Region and account of every canonical ARN (records and resolved template alike).
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = caas_local::ACCOUNT_ID;

/// One IAM authorization a handler's request needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Call {
    /// Logical id of the function whose App made the request.
    pub function: String,
    /// The SDK operation, e.g. `TransactWriteItems`.
    pub operation: String,
    /// The IAM action, e.g. `dynamodb:PutItem`.
    pub action: String,
    /// The canonical resource ARN, or `*` for actions without resource-level
    /// permissions; `?` when the request does not name its resource (a KMS
    /// `Decrypt` without `KeyId`).
    pub resource: String,
    /// The first test (thread name) that made it: for messages only.
    #[serde(default)]
    pub test: String,
    /// For a KMS call naming a key by id or ARN: the aliases (canonical
    /// alias ARNs) the key had when it was called, as the calls of this
    /// process that create, move and delete aliases left them (keys created at
    /// runtime, such as a rotation's, are not in the template). Empty for a
    /// call naming an alias: the alias is its resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Physical names of one test stack mapped back to logical ids.
#[derive(Debug, Default)]
pub struct Names {
    /// (physical name, logical id), longest physical name first, per kind.
    tables: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    aliases: Vec<(String, String)>,
    queues: Vec<(String, String)>,
    buckets: Vec<(String, String)>,
}

impl Names {
    pub fn of(stack: &Stack) -> Self {
        let mut names = Names::default();
        for (logical, physical) in &stack.resources {
            let list = match physical.kind {
                ResourceKind::Table => &mut names.tables,
                ResourceKind::Key => &mut names.keys,
                ResourceKind::Alias => &mut names.aliases,
                ResourceKind::Queue => &mut names.queues,
                ResourceKind::Bucket => &mut names.buckets,
            };
            list.push((physical.name.clone(), logical.clone()));
            if physical.kind == ResourceKind::Queue {
                // FIFO queues are named `<LogicalId>-<suffix>.fifo`.
                if let Some(stem) = physical.name.strip_suffix(".fifo") {
                    list.push((stem.to_owned(), logical.clone()));
                }
            }
        }
        for list in
            [&mut names.tables, &mut names.keys, &mut names.aliases, &mut names.queues, &mut names.buckets]
        {
            list.sort_by_key(|(physical, _)| std::cmp::Reverse(physical.len()));
        }
        names
    }

    /// `name` with a stack resource's physical name (as the whole name or as a
    /// prefix followed by `-`, like the backup's `<table>-restore-*` tables)
    /// replaced by its logical id.
    fn canonical(list: &[(String, String)], name: &str) -> String {
        for (physical, logical) in list {
            if name == physical {
                return logical.clone();
            }
            if let Some(rest) = name.strip_prefix(physical.as_str())
                && rest.starts_with('-')
            {
                return format!("{logical}{rest}");
            }
        }
        name.to_owned()
    }

    pub fn table_arn(&self, name: &str) -> String {
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", Self::canonical(&self.tables, name))
    }

    /// A DynamoDB ARN (table, index, stream or backup) with its table canonical.
    pub fn dynamodb_arn(&self, arn: &str) -> String {
        let Some((_, path)) = arn.split_once(":table/") else { return arn.to_owned() };
        let (table, rest) = path.split_once('/').map_or((path, None), |(t, r)| (t, Some(r)));
        match rest {
            Some(rest) => format!("{}/{rest}", self.table_arn(table)),
            None => self.table_arn(table),
        }
    }

    /// A KMS `KeyId` (key id, key ARN, alias name or alias ARN) as a key ARN,
    /// or an alias ARN (`.../alias/<AliasLogicalId>`) when it names an alias.
    pub fn key_arn(&self, key_id: &str) -> String {
        let id = key_id.rsplit_once(":key/").map_or(key_id, |(_, id)| id);
        let alias = id.find("alias/").map(|at| &id[at..]);
        match alias {
            Some(alias) => format!(
                "arn:aws:kms:{REGION}:{ACCOUNT}:alias/{}",
                Self::canonical(&self.aliases, alias).trim_start_matches("alias/")
            ),
            None => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", Self::canonical(&self.keys, id)),
        }
    }

    /// An S3 request's path (path-style: `/<bucket>/<key>`) as an object ARN
    /// (`arn:aws:s3:::<BucketLogicalId>/<key>`), or the bucket's ARN.
    pub fn s3_arn(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        let (bucket, key) = path.split_once('/').map_or((path, None), |(b, k)| (b, Some(k)));
        let bucket = Self::canonical(&self.buckets, bucket);
        match key {
            Some(key) if !key.is_empty() => format!("arn:aws:s3:::{bucket}/{key}"),
            _ => format!("arn:aws:s3:::{bucket}"),
        }
    }

    /// A queue URL (or name) as a queue ARN.
    pub fn queue_arn(&self, url_or_name: &str) -> String {
        let name = url_or_name.trim_end_matches('/').rsplit('/').next().unwrap_or(url_or_name);
        format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}", Self::canonical(&self.queues, name))
    }
}

/// The IAM authorizations `(action, resource)` one request needs.
pub fn authorizations(names: &Names, service: &str, operation: &str, input: &Value) -> Vec<(String, String)> {
    let s = |key: &str| input.get(key).and_then(Value::as_str);
    let one = |action: &str, resource: String| vec![(action.to_owned(), resource)];
    match service {
        "dynamodb" => {
            let action = |op: &str| format!("dynamodb:{op}");
            let table = || {
                s("TableName")
                    .map(|t| names.table_arn(t))
                    .or_else(|| s("TableArn").map(|a| names.dynamodb_arn(a)))
            };
            match operation {
                "TransactWriteItems" | "TransactGetItems" => input
                    .get("TransactItems")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .flat_map(|item| item.iter())
                    .map(|(kind, body)| {
                        let op = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            "Get" => "GetItem",
                            other => other,
                        };
                        let table = body.get("TableName").and_then(Value::as_str).unwrap_or("?");
                        (action(op), names.table_arn(table))
                    })
                    .collect(),
                "BatchGetItem" | "BatchWriteItem" => input
                    .get("RequestItems")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|items| items.keys())
                    .map(|table| (action(operation), names.table_arn(table)))
                    .collect(),
                "Query" | "Scan" => {
                    let table = table().unwrap_or_else(|| "?".to_owned());
                    let resource = match s("IndexName") {
                        Some(index) => format!("{table}/index/{index}"),
                        None => table,
                    };
                    one(&action(operation), resource)
                }
                "ListTables" | "ListBackups" | "DescribeLimits" | "DescribeEndpoints" => {
                    one(&action(operation), "*".to_owned())
                }
                "DescribeBackup" | "DeleteBackup" => one(
                    &action(operation),
                    s("BackupArn").map_or_else(|| "?".to_owned(), |a| names.dynamodb_arn(a)),
                ),
                "RestoreTableFromBackup" => {
                    let backup = s("BackupArn").map_or_else(|| "?".to_owned(), |a| names.dynamodb_arn(a));
                    let target = names.table_arn(s("TargetTableName").unwrap_or("?"));
                    vec![(action(operation), backup), (action(operation), target)]
                }
                "RestoreTableToPointInTime" => {
                    let source = s("SourceTableName")
                        .map(|t| names.table_arn(t))
                        .or_else(|| s("SourceTableArn").map(|a| names.dynamodb_arn(a)))
                        .unwrap_or_else(|| "?".to_owned());
                    let target = names.table_arn(s("TargetTableName").unwrap_or("?"));
                    vec![(action(operation), source), (action(operation), target)]
                }
                _ => one(&action(operation), table().unwrap_or_else(|| "?".to_owned())),
            }
        }
        "kms" => {
            one(&format!("kms:{operation}"), s("KeyId").map_or_else(|| "?".to_owned(), |k| names.key_arn(k)))
        }
        "sqs" => {
            let action = match operation {
                "SendMessageBatch" => "SendMessage",
                "DeleteMessageBatch" => "DeleteMessage",
                "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                other => other,
            };
            let resource = match operation {
                "ListQueues" => "*".to_owned(),
                "GetQueueUrl" => s("QueueName").map_or_else(|| "?".to_owned(), |n| names.queue_arn(n)),
                _ => s("QueueUrl").map_or_else(|| "?".to_owned(), |u| names.queue_arn(u)),
            };
            one(&format!("sqs:{action}"), resource)
        }
        other => one(&format!("{other}:{operation}"), "?".to_owned()),
    }
}

/// The logical id of the stack's WebSocket API: a `@connections` call names
/// its API by the endpoint's host, which in tests is a loopback listener.
pub const WEBSOCKET_API: &str = "WebSocketApi";

/// The IAM authorization of an API Gateway Management API request:
/// `execute-api:ManageConnections` on
/// `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/@connections/<id>`.
pub fn connection_authorizations(method: &str, path: &str) -> Vec<(String, String)> {
    let path = path.trim_start_matches('/');
    let resource = match path.split_once("@connections/") {
        Some((stage, id)) => format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT}:{WEBSOCKET_API}/{}/{method}/@connections/{id}",
            stage.trim_end_matches('/')
        ),
        None => "?".to_owned(),
    };
    vec![("execute-api:ManageConnections".to_owned(), resource)]
}

/// The IAM authorizations of one S3 request (REST: the resource is in its
/// path; presigned requests are recorded too, since the URL acts with the
/// signer's permissions).
pub fn s3_authorizations(
    names: &Names,
    operation: &str,
    request: &aws_smithy_runtime_api::http::Request,
) -> Vec<(String, String)> {
    let uri = request.uri();
    let path = uri.split("://").nth(1).and_then(|rest| rest.find('/').map(|at| &rest[at..])).unwrap_or(uri);
    let path = path.split('?').next().unwrap_or(path);
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
    let resource = names.s3_arn(&path);
    let action = match operation {
        "HeadObject" => "GetObject",
        other => other,
    };
    let mut needed = vec![(format!("s3:{action}"), resource.clone())];
    if operation == "PutObject" && request.headers().get("x-amz-tagging").is_some() {
        needed.push(("s3:PutObjectTagging".to_owned(), resource));
    }
    needed
}

/// Where each alias points (canonical alias ARN → canonical key ARN), as
/// the alias calls of this process (any function's, or none's) left it.
fn alias_map() -> &'static Mutex<std::collections::HashMap<String, String>> {
    static MAP: OnceLock<Mutex<std::collections::HashMap<String, String>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// Follows an alias call, and answers the aliases of the key a KMS call
/// names by id (empty when it names an alias, or no key).
fn key_aliases(names: &Names, operation: &str, input: &Value) -> Vec<String> {
    let s = |key: &str| input.get(key).and_then(Value::as_str);
    let mut map = alias_map().lock().unwrap_or_else(|p| p.into_inner());
    match (operation, s("AliasName"), s("TargetKeyId")) {
        ("CreateAlias" | "UpdateAlias", Some(alias), Some(target)) => {
            map.insert(names.key_arn(alias), names.key_arn(target));
        }
        ("DeleteAlias", Some(alias), _) => {
            map.remove(&names.key_arn(alias));
        }
        _ => {}
    }
    let Some(key) = s("KeyId").map(|k| names.key_arn(k)).filter(|k| k.contains(":key/")) else {
        return Vec::new();
    };
    let mut aliases: Vec<String> =
        map.iter().filter(|(_, target)| **target == key).map(|(alias, _)| alias.clone()).collect();
    aliases.sort();
    aliases
}

/// The interceptor: attributes every request of its clients to one function.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    function: Arc<str>,
    names: Arc<Names>,
}

impl CallRecorder {
    pub fn new(function: &str, stack: &Stack) -> Self {
        Self { function: function.into(), names: Arc::new(Names::of(stack)) }
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(sink) = sink() else { return Ok(()) };
        let Some(metadata) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() else {
            return Ok(());
        };
        let service = metadata.service().to_ascii_lowercase();
        let operation = metadata.name().to_owned();
        let input: Value = context
            .request()
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or(Value::Null);
        let test = std::thread::current().name().unwrap_or_default().to_owned();
        let aliases = match service.as_str() {
            "kms" => key_aliases(&self.names, &operation, &input),
            _ => Vec::new(),
        };
        let authorizations = match service.as_str() {
            "apigatewaymanagementapi" => {
                let path =
                    context.request().uri().split_once("://").map_or(context.request().uri(), |(_, rest)| {
                        rest.find('/').map_or("/", |at| &rest[at..])
                    });
                connection_authorizations(context.request().method(), path)
            }
            "s3" => s3_authorizations(&self.names, &operation, context.request()),
            _ => authorizations(&self.names, &service, &operation, &input),
        };
        for (action, resource) in authorizations {
            sink.write(Call {
                function: self.function.to_string(),
                operation: operation.clone(),
                action,
                resource,
                test: test.clone(),
                aliases: aliases.clone(),
            });
        }
        Ok(())
    }
}

struct Sink {
    path: PathBuf,
    seen: Mutex<HashSet<(String, String, String, String)>>,
}

impl Sink {
    fn write(&self, call: Call) {
        let key = (call.function.clone(), call.operation.clone(), call.action.clone(), call.resource.clone());
        if !self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            return;
        }
        let mut line = serde_json::to_string(&call).expect("a call serializes");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        file.write_all(line.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
    }
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = PathBuf::from(std::env::var_os(RECORD_DIR_VAR).filter(|d| !d.is_empty())?);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".to_owned());
        let path = dir.join(format!("{binary}-{}.jsonl", std::process::id()));
        Some(Sink { path, seen: Mutex::new(HashSet::new()) })
    })
    .as_ref()
}

/// Every record under `dir` (all test processes of a run).
pub fn read_records(dir: &std::path::Path) -> std::io::Result<Vec<Call>> {
    let mut calls = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for (n, line) in std::fs::read_to_string(&path)?.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let call: Call = serde_json::from_str(line)
                    .map_err(|e| std::io::Error::other(format!("{}:{}: {e}", path.display(), n + 1)))?;
                calls.push(call);
            }
        }
    }
    Ok(calls)
}

/// Clients whose every request is counted by `counter` and seen by
/// `recorder` (a [`CallRecorder`] attributing it to a function, or the
/// bench's byte recorder).
pub fn handler_clients<R>(sdk: &SdkConfig, counter: &crate::RoundTrips, recorder: R) -> Clients
where
    R: Intercept + Clone + 'static,
{
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .interceptor(recorder.clone())
                .build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .interceptor(recorder.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .interceptor(recorder.clone())
                .build(),
        ),
        s3: Some(aws_sdk_s3::Client::from_conf(
            caas::clients::s3_config(sdk).interceptor(counter.clone()).interceptor(recorder).build(),
        )),
    }
}
