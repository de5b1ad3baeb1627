//! `AWS::KMS::Key` (with rotation) and `AWS::KMS::Alias`.

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};

use super::{aws_error, parse_enum};
use crate::error::LocalError;
use crate::props::Props;
use crate::stack::{ACCOUNT_ID, Physical, ResourceKind, Stack};

pub(super) async fn create_key(
    client: &Client,
    props: Props<'_>,
    name: &str,
) -> Result<Physical, LocalError> {
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

pub(super) async fn create_alias(
    client: &Client,
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
        .unwrap_or_else(|| format!("arn:aws:kms:{region}:{ACCOUNT_ID}:{alias}"));
    Ok(Physical { kind: ResourceKind::Alias, name: alias.to_owned(), arn, url: None, stream_arn: None })
}
