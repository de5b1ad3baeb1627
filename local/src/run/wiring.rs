//! The template's functions made runnable (binary, environment, log file) and their
//! event sources attached: stream and queue pollers, schedules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{RunError, Session};
use crate::functions::Function;
use crate::pollers::{QueueSource, StreamSource};
use crate::runtime_api::Launch;
use crate::schedule::Schedule;
use crate::stack::{ACCOUNT_ID, Stack};
use crate::template::{EventSource, Template};

/// Each function's binary, checked to exist.
pub(super) fn check_binaries(template: &Template, dir: &Path) -> Result<BTreeMap<String, PathBuf>, RunError> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for spec in template.functions() {
        let path = dir.join(&spec.binary);
        if path.is_file() {
            found.insert(spec.logical_id, path);
        } else {
            missing.push(spec.binary);
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(RunError::MissingBinaries { dir: dir.to_path_buf(), missing: missing.join(", ") })
    }
}

/// Every function of the template, with the environment Lambda would give it; URLs of
/// the WebSocket API point at `websocket_url`, the local server (`http://HOST:PORT`).
pub(super) fn functions(
    session: &Session<'_>,
    stack: &Stack,
    logs: &Path,
    websocket_url: Option<&str>,
) -> Result<BTreeMap<String, Arc<Function>>, RunError> {
    let (options, template) = (session.options, &session.template);
    let mut functions = BTreeMap::new();
    for spec in template.functions() {
        let mut env = stack.function_env(template, &spec.logical_id, &options.parameter_overrides)?;
        if let Some(local) = websocket_url {
            let (apis, region) = (template.websocket_apis(), stack.region());
            env.values_mut().for_each(|v| *v = crate::websocket_api::local_urls(v, apis, &region, local));
        }
        env.extend(session.aws_env.clone());
        env.extend(lambda_env(template, &spec.logical_id, spec.memory_mb, &options.bin_dir));
        let launch = Launch {
            function: spec.logical_id.clone(),
            binary: session.binaries[&spec.logical_id].clone(),
            env,
            log_file: logs.join(format!("{}.log", spec.logical_id)),
            arn: format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}", session.region, spec.logical_id),
        };
        let function = Function::new(spec.clone(), launch, options.max_instances, session.console.clone());
        functions.insert(spec.logical_id.clone(), Arc::new(function));
    }
    Ok(functions)
}

/// What Lambda's environment sets for every function.
fn lambda_env(
    template: &Template,
    function: &str,
    memory_mb: u64,
    task_root: &Path,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(format) = template.log_format(function) {
        env.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format);
    }
    env
}

/// Starts the stream and queue pollers and the `rate()` schedules (unless schedules
/// are off); returns their tasks and every schedule (for firing on demand).
pub(super) fn triggers(
    session: &Session<'_>,
    stack: &Stack,
    functions: &BTreeMap<String, Arc<Function>>,
) -> (JoinSet<()>, Vec<Schedule>) {
    let mut tasks = JoinSet::new();
    let mut schedules = Vec::new();
    for function in functions.values() {
        for event in &function.spec.events {
            match event {
                EventSource::HttpApi { .. } => {}
                EventSource::DynamoDbStream { .. } => {
                    if let Some(source) = stream_source(session, stack, function, event) {
                        tasks.spawn(source.run(aws_sdk_dynamodbstreams::Client::new(&session.sdk)));
                    }
                }
                EventSource::Sqs { queue_logical_id, batch_size } => {
                    let Some(queue) = stack.resources.get(queue_logical_id) else {
                        continue;
                    };
                    let source = QueueSource {
                        function: function.clone(),
                        queue_url: queue.url.clone().unwrap_or_default(),
                        queue_arn: queue.arn.clone(),
                        batch_size: i32::try_from(*batch_size).unwrap_or(10),
                        region: session.region.clone(),
                    };
                    tasks.spawn(source.run(aws_sdk_sqs::Client::new(&session.sdk)));
                }
                EventSource::Schedule { name, expression, input } => {
                    let schedule = Schedule {
                        function: function.clone(),
                        name: name.clone(),
                        expression: expression.clone(),
                        input: input.clone(),
                        region: session.region.clone(),
                    };
                    if session.options.schedule_speedup > 0.0 {
                        tasks.spawn(schedule.clone().run(session.options.schedule_speedup));
                    }
                    schedules.push(schedule);
                }
            }
        }
    }
    (tasks, schedules)
}

/// The poller of a `DynamoDB` event; none (with a note) when the table has no stream.
fn stream_source(
    session: &Session<'_>,
    stack: &Stack,
    function: &Arc<Function>,
    event: &EventSource,
) -> Option<StreamSource> {
    let EventSource::DynamoDbStream { table_logical_id, batch_size, filter_patterns } = event else {
        return None;
    };
    let Some(stream_arn) = stack.resources.get(table_logical_id).and_then(|t| t.stream_arn.clone()) else {
        let name = function.name();
        session.console.note(&format!("{table_logical_id} has no stream; {name} gets no records"));
        return None;
    };
    Some(StreamSource {
        function: function.clone(),
        stream_arn,
        batch_size: usize::try_from(*batch_size).unwrap_or(100).max(1),
        filters: filter_patterns.clone(),
        region: session.region.clone(),
    })
}
