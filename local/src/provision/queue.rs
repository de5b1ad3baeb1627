//! `AWS::SQS::Queue`: standard or FIFO, its attributes (redrive policies included)
//! passed through as SQS attributes.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName as A;
use serde_json::Value;

use super::aws_error;
use crate::error::LocalError;
use crate::props::Props;
use crate::stack::{Physical, ResourceKind};

const BOOLEANS: [(&str, A); 2] = [
    ("ContentBasedDeduplication", A::ContentBasedDeduplication),
    ("SqsManagedSseEnabled", A::SqsManagedSseEnabled),
];
const INTEGERS: [(&str, A); 6] = [
    ("VisibilityTimeout", A::VisibilityTimeout),
    ("MessageRetentionPeriod", A::MessageRetentionPeriod),
    ("DelaySeconds", A::DelaySeconds),
    ("MaximumMessageSize", A::MaximumMessageSize),
    ("ReceiveMessageWaitTimeSeconds", A::ReceiveMessageWaitTimeSeconds),
    ("KmsDataKeyReusePeriodSeconds", A::KmsDataKeyReusePeriodSeconds),
];
const STRINGS: [(&str, A); 3] = [
    ("KmsMasterKeyId", A::KmsMasterKeyId),
    ("DeduplicationScope", A::DeduplicationScope),
    ("FifoThroughputLimit", A::FifoThroughputLimit),
];
/// JSON documents, given as a string or as a mapping.
const POLICIES: [(&str, A); 2] =
    [("RedrivePolicy", A::RedrivePolicy), ("RedriveAllowPolicy", A::RedriveAllowPolicy)];

pub(super) async fn create(client: &Client, props: Props<'_>, name: &str) -> Result<Physical, LocalError> {
    let fifo = props.bool("FifoQueue")?.unwrap_or(false);
    let name = if fifo { format!("{name}.fifo") } else { name.to_owned() };
    let created = client
        .create_queue()
        .queue_name(&name)
        .set_attributes(Some(attributes(props, fifo)?))
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

fn attributes(props: Props<'_>, fifo: bool) -> Result<HashMap<A, String>, LocalError> {
    let mut attributes: HashMap<A, String> = HashMap::new();
    if fifo {
        attributes.insert(A::FifoQueue, "true".to_owned());
    }
    for (key, attribute) in BOOLEANS {
        if let Some(b) = props.bool(key)? {
            attributes.insert(attribute, b.to_string());
        }
    }
    for (key, attribute) in INTEGERS {
        if let Some(n) = props.int(key)? {
            attributes.insert(attribute, n.to_string());
        }
    }
    for (key, attribute) in STRINGS {
        if let Some(s) = props.str(key)? {
            attributes.insert(attribute, s.to_owned());
        }
    }
    for (key, attribute) in POLICIES {
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
    Ok(attributes)
}
