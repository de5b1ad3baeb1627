//! What an event source mapping hands a function, built from what it reads: a
//! DynamoDB stream record or an SQS message in Lambda's shape (`aws_lambda_events`),
//! the `FilterCriteria` test a record must pass, and the reads themselves. The local
//! stack's pollers and the integration tests' triggers both deliver events through
//! these, so both see the same records.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde::Serialize;
use serde_json::Value;

use crate::filter::matches_any;

/// The stream record as Lambda delivers it from the stream `stream_arn` in `region`.
pub fn stream_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
    region: &str,
) -> EventRecord {
    let mut change = StreamRecord::default();
    if let Some(part) = record.dynamodb() {
        change.keys = part.keys().cloned().unwrap_or_default().into();
        change.new_image = part.new_image().cloned().unwrap_or_default().into();
        change.old_image = part.old_image().cloned().unwrap_or_default().into();
        change.sequence_number = part.sequence_number().map(str::to_owned);
        change.size_bytes = part.size_bytes().unwrap_or_default();
        change.stream_view_type = part.stream_view_type().and_then(|v| match v.as_str() {
            "NEW_IMAGE" => Some(StreamViewType::NewImage),
            "OLD_IMAGE" => Some(StreamViewType::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
            "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
            _ => None,
        });
        if let Some(created) = part.approximate_creation_date_time() {
            change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(created.secs(), 0).unwrap_or_default();
        }
    }
    let mut out = EventRecord::default();
    out.aws_region = region.to_owned();
    out.change = change;
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default();
    out.event_source = Some("aws:dynamodb".to_owned());
    out.event_version = record.event_version().map(str::to_owned);
    out.event_source_arn = Some(stream_arn.to_owned());
    out
}

/// The message as Lambda delivers it from the queue `queue_arn` in `region`.
pub fn sqs_message(message: &aws_sdk_sqs::types::Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = message.message_id().map(str::to_owned);
    out.receipt_handle = message.receipt_handle().map(str::to_owned);
    out.body = message.body().map(str::to_owned);
    out.md5_of_body = message.md5_of_body().map(str::to_owned);
    out.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    out.attributes = message
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
        .unwrap_or_default();
    out.message_attributes = message
        .message_attributes()
        .map(|a| a.iter().map(|(name, v)| (name.clone(), message_attribute(v))).collect())
        .unwrap_or_default();
    out.event_source = Some("aws:sqs".to_owned());
    out.event_source_arn = Some(queue_arn.to_owned());
    out.aws_region = Some(region.to_owned());
    out
}

fn message_attribute(value: &aws_sdk_sqs::types::MessageAttributeValue) -> SqsMessageAttribute {
    let mut out = SqsMessageAttribute::default();
    out.data_type = Some(value.data_type().to_owned());
    out.string_value = value.string_value().map(str::to_owned);
    out.binary_value = value.binary_value().map(|blob| {
        let mut data = Base64Data::default();
        data.extend_from_slice(blob.as_ref());
        data
    });
    out
}

/// Lambda's filter rule: `record` goes to the function when its JSON form matches any
/// of the `FilterCriteria` patterns (or there are none).
pub fn passes(filters: &[Value], record: &impl Serialize) -> bool {
    filters.is_empty() || serde_json::to_value(record).is_ok_and(|json| matches_any(filters, &json))
}

/// The ids of the stream's shards.
pub async fn shard_ids(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<String>, String> {
    let described = client.describe_stream().stream_arn(stream_arn).send().await.map_err(display)?;
    Ok(described
        .stream_description()
        .map(|d| d.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// An iterator at the oldest record still in the shard.
pub async fn trim_horizon(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    shard_id: &str,
) -> Result<Option<String>, String> {
    let output = client
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(display)?;
    Ok(output.shard_iterator)
}

/// A ReceiveMessage of up to `max` (1..=10) messages with every attribute Lambda hands
/// on (system attributes such as `MessageGroupId`, and message attributes); callers add
/// their wait and visibility settings.
pub fn receive_messages(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
) -> ReceiveMessageFluentBuilder {
    client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max.clamp(1, 10))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
}

/// An SDK error with its service code and message.
pub fn display(error: impl std::error::Error) -> String {
    aws_sdk_dynamodbstreams::error::DisplayErrorContext(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{
        AttributeValue, OperationType, Record, StreamRecord as SdkStreamRecord, StreamViewType as SdkView,
    };
    use serde_json::json;

    fn outbox_insert() -> Record {
        let change = SdkStreamRecord::builder()
            .keys("pk", AttributeValue::S("T#acme#OUTBOX#1".into()))
            .new_image("kind", AttributeValue::S("outbox".into()))
            .sequence_number("100")
            .size_bytes(10)
            .stream_view_type(SdkView::NewAndOldImages)
            .approximate_creation_date_time(aws_sdk_dynamodbstreams::primitives::DateTime::from_secs(
                1_700_000_000,
            ))
            .build();
        Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .dynamodb(change)
            .build()
    }

    #[test]
    fn a_stream_record_has_lambdas_shape() {
        let record = stream_record(&outbox_insert(), "arn:stream", "eu-west-1");
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["eventID"], "e1");
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(json["eventSource"], "aws:dynamodb");
        assert_eq!(json["eventSourceARN"], "arn:stream");
        assert_eq!(json["awsRegion"], "eu-west-1");
        assert_eq!(json["dynamodb"]["NewImage"], json!({"kind": {"S": "outbox"}}));
        assert_eq!(json["dynamodb"]["SequenceNumber"], "100");
        assert_eq!(json["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], 1_700_000_000);
    }

    #[test]
    fn records_pass_the_template_filter_in_their_lambda_shape() {
        let record = stream_record(&outbox_insert(), "arn:stream", "us-east-1");
        let outbox = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["outbox"]}}}});
        assert!(passes(&[outbox], &record));
        assert!(!passes(&[json!({"eventName": ["MODIFY"]})], &record));
        assert!(passes(&[], &record));
    }

    #[test]
    fn a_message_has_lambdas_shape() {
        use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName as N};
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("hello")
            .attributes(N::MessageGroupId, "acme")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder().data_type("String").string_value("audit").build().unwrap(),
            )
            .build();
        let json = serde_json::to_value(sqs_message(&message, "arn:queue", "us-east-1")).unwrap();
        assert_eq!(json["messageId"], "m1");
        assert_eq!(json["receiptHandle"], "r1");
        assert_eq!(json["body"], "hello");
        assert_eq!(json["attributes"]["MessageGroupId"], "acme");
        assert_eq!(json["messageAttributes"]["kind"]["stringValue"], "audit");
        assert_eq!(json["messageAttributes"]["kind"]["dataType"], "String");
        assert_eq!(json["eventSource"], "aws:sqs");
        assert_eq!(json["eventSourceARN"], "arn:queue");
        assert_eq!(json["awsRegion"], "us-east-1");
    }
}
