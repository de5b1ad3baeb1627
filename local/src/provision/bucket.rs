//! `AWS::S3::Bucket`: created with its CORS rules (what a browser's presigned
//! upload needs); encryption, public access block and lifecycle are S3's
//! business and are not emulated. Bucket names are lowercase.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use serde_json::Value;

use super::{aws_error, built};
use crate::error::LocalError;
use crate::props::Props;
use crate::stack::{Physical, ResourceKind};

pub(super) async fn create(client: &Client, props: Props<'_>, name: &str) -> Result<Physical, LocalError> {
    let name = name.to_ascii_lowercase();
    client.create_bucket().bucket(&name).send().await.map_err(|e| aws_error("CreateBucket", &name, e))?;
    let rules = cors_rules(&props)?;
    if !rules.is_empty() {
        let cors = built(CorsConfiguration::builder().set_cors_rules(Some(rules)).build(), props.at())?;
        client
            .put_bucket_cors()
            .bucket(&name)
            .cors_configuration(cors)
            .send()
            .await
            .map_err(|e| aws_error("PutBucketCors", &name, e))?;
    }
    let arn = format!("arn:aws:s3:::{name}");
    Ok(Physical { kind: ResourceKind::Bucket, name, arn, url: None, stream_arn: None })
}

/// A list of strings, or one comma-delimited string (a `CommaDelimitedList` parameter).
fn strings(rule: &Value, key: &str) -> Vec<String> {
    match rule.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(list)) => list.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

fn cors_rules(props: &Props<'_>) -> Result<Vec<CorsRule>, LocalError> {
    let Some(rules) =
        props.get("CorsConfiguration").and_then(|c| c.get("CorsRules")).and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    rules
        .iter()
        .map(|rule| {
            built(
                CorsRule::builder()
                    .set_allowed_methods(Some(strings(rule, "AllowedMethods")))
                    .set_allowed_origins(Some(strings(rule, "AllowedOrigins")))
                    .set_allowed_headers(Some(strings(rule, "AllowedHeaders")))
                    .set_expose_headers(Some(strings(rule, "ExposedHeaders")))
                    .set_max_age_seconds(
                        rule.get("MaxAge").and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok()),
                    )
                    .build(),
                props.at(),
            )
        })
        .collect()
}

/// Empties and deletes a bucket (best effort, like every teardown).
pub(super) async fn delete(client: &Client, name: &str) -> Result<(), aws_sdk_s3::Error> {
    let mut pages = client.list_objects_v2().bucket(name).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.map_err(aws_sdk_s3::Error::from)?.contents() {
            if let Some(key) = object.key() {
                client.delete_object().bucket(name).key(key).send().await.map_err(aws_sdk_s3::Error::from)?;
            }
        }
    }
    client.delete_bucket().bucket(name).send().await.map_err(aws_sdk_s3::Error::from)?;
    Ok(())
}
