//! `AWS::DynamoDB::Table`: keys, indexes, billing, stream and encryption at creation,
//! then TTL and point-in-time recovery once the table is active.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    SseSpecification, SseType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::{aws_error, built, parse_enum};
use crate::error::LocalError;
use crate::props::Props;
use crate::stack::{Physical, ResourceKind};

const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn create(client: &Client, props: Props<'_>, name: &str) -> Result<Physical, LocalError> {
    let created = client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attribute_definitions(props)?))
        .set_key_schema(Some(key_schema(props)?))
        .set_global_secondary_indexes(non_empty(global_indexes(props)?))
        .set_local_secondary_indexes(non_empty(local_indexes(props)?))
        .billing_mode(parse_enum(
            props.str("BillingMode")?.unwrap_or("PROVISIONED"),
            props.at(),
            BillingMode::try_parse,
        )?)
        .set_provisioned_throughput(throughput(props)?)
        .set_stream_specification(stream_specification(props)?)
        .set_sse_specification(sse_specification(props)?)
        .send()
        .await
        .map_err(|e| aws_error("CreateTable", name, e))?;
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
    enable_time_to_live(client, props, name).await?;
    enable_point_in_time_recovery(client, props, name).await?;
    Ok(Physical { kind: ResourceKind::Table, name: name.to_owned(), arn, url: None, stream_arn })
}

/// The builders' `set_*` take `None` for "not given"; an empty list is not given.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn attribute_definitions(props: Props<'_>) -> Result<Vec<AttributeDefinition>, LocalError> {
    props
        .list("AttributeDefinitions")?
        .into_iter()
        .map(|(at, v)| {
            let d = Props::new(v, &at.0)?;
            let attribute_type =
                parse_enum(d.req_str("AttributeType")?, &at.0, ScalarAttributeType::try_parse)?;
            built(
                AttributeDefinition::builder()
                    .attribute_name(d.req_str("AttributeName")?)
                    .attribute_type(attribute_type)
                    .build(),
                &at.0,
            )
        })
        .collect()
}

fn key_schema(props: Props<'_>) -> Result<Vec<KeySchemaElement>, LocalError> {
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
}

fn projection(props: Props<'_>) -> Result<Projection, LocalError> {
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
}

fn throughput(props: Props<'_>) -> Result<Option<ProvisionedThroughput>, LocalError> {
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
}

fn global_indexes(props: Props<'_>) -> Result<Vec<GlobalSecondaryIndex>, LocalError> {
    props
        .list("GlobalSecondaryIndexes")?
        .into_iter()
        .map(|(at, v)| {
            let g = Props::new(v, &at.0)?;
            built(
                GlobalSecondaryIndex::builder()
                    .index_name(g.req_str("IndexName")?)
                    .set_key_schema(Some(key_schema(g)?))
                    .projection(projection(g)?)
                    .set_provisioned_throughput(throughput(g)?)
                    .build(),
                &at.0,
            )
        })
        .collect()
}

fn local_indexes(props: Props<'_>) -> Result<Vec<LocalSecondaryIndex>, LocalError> {
    props
        .list("LocalSecondaryIndexes")?
        .into_iter()
        .map(|(at, v)| {
            let l = Props::new(v, &at.0)?;
            built(
                LocalSecondaryIndex::builder()
                    .index_name(l.req_str("IndexName")?)
                    .set_key_schema(Some(key_schema(l)?))
                    .projection(projection(l)?)
                    .build(),
                &at.0,
            )
        })
        .collect()
}

fn stream_specification(props: Props<'_>) -> Result<Option<StreamSpecification>, LocalError> {
    let Some(value) = props.get("StreamSpecification") else {
        return Ok(None);
    };
    let at = format!("{}.StreamSpecification", props.at());
    let s = Props::new(value, &at)?;
    let view = parse_enum(s.req_str("StreamViewType")?, &at, StreamViewType::try_parse)?;
    built(StreamSpecification::builder().stream_enabled(true).stream_view_type(view).build(), &at).map(Some)
}

fn sse_specification(props: Props<'_>) -> Result<Option<SseSpecification>, LocalError> {
    let Some(value) = props.get("SSESpecification") else {
        return Ok(None);
    };
    let at = format!("{}.SSESpecification", props.at());
    let s = Props::new(value, &at)?;
    let mut sse = SseSpecification::builder().set_enabled(s.bool("SSEEnabled")?);
    if let Some(t) = s.str("SSEType")? {
        sse = sse.sse_type(parse_enum(t, &at, SseType::try_parse)?);
    }
    Ok(Some(sse.set_kms_master_key_id(s.str("KMSMasterKeyId")?.map(str::to_owned)).build()))
}

async fn enable_time_to_live(client: &Client, props: Props<'_>, name: &str) -> Result<(), LocalError> {
    let Some(value) = props.get("TimeToLiveSpecification") else {
        return Ok(());
    };
    let at = format!("{}.TimeToLiveSpecification", props.at());
    let t = Props::new(value, &at)?;
    if !t.bool("Enabled")?.unwrap_or(false) {
        return Ok(());
    }
    let spec = built(
        TimeToLiveSpecification::builder().attribute_name(t.req_str("AttributeName")?).enabled(true).build(),
        &at,
    )?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| aws_error("UpdateTimeToLive", name, e))?;
    Ok(())
}

async fn enable_point_in_time_recovery(
    client: &Client,
    props: Props<'_>,
    name: &str,
) -> Result<(), LocalError> {
    let Some(value) = props.get("PointInTimeRecoverySpecification") else {
        return Ok(());
    };
    let at = format!("{}.PointInTimeRecoverySpecification", props.at());
    let p = Props::new(value, &at)?;
    if !p.bool("PointInTimeRecoveryEnabled")?.unwrap_or(false) {
        return Ok(());
    }
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
    Ok(())
}
