//! What a restore does not carry over, re-applied: TTL, the stream, PITR.
//! The TTL attribute and the stream view type come from the store
//! ([`TTL_ATTRIBUTE`], [`STREAM_VIEW`]), the one source template.yaml is
//! tested against.

use super::pitr::ensure_pitr;
use crate::app::App;
use crate::error::AppError;
use crate::store::{STREAM_VIEW, TTL_ATTRIBUTE};
use aws_sdk_dynamodb::types::{StreamSpecification, TimeToLiveSpecification, TimeToLiveStatus};

/// Re-applies TTL, the stream and PITR where they are off; returns what it
/// turned on. Idempotent.
pub async fn reapply_settings(app: &App, table: &str) -> Result<Vec<String>, AppError> {
    let mut applied = Vec::new();
    if ensure_ttl(app, table).await? {
        applied.push(format!("ttl:{TTL_ATTRIBUTE}"));
    }
    if ensure_stream(app, table).await? {
        applied.push(format!("stream:{}", STREAM_VIEW.as_str()));
    }
    let pitr = ensure_pitr(app, table, app.now()).await?;
    if pitr.was_disabled {
        applied.push("point_in_time_recovery".into());
    }
    Ok(applied)
}

/// TTL on [`TTL_ATTRIBUTE`]; `true` when it had to be turned on.
async fn ensure_ttl(app: &App, table: &str) -> Result<bool, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe TTL", e))?;
    let ttl_on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if ttl_on {
        return Ok(false);
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(|e| AppError::internal("build TTL specification", e))?;
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("enable TTL", e))?;
    Ok(true)
}

/// The stream on, with [`STREAM_VIEW`]; `true` when it had to be turned on.
async fn ensure_stream(app: &App, table: &str) -> Result<bool, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe table", e))?;
    let stream_on =
        described.table().and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled());
    if stream_on {
        return Ok(false);
    }
    let spec = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(STREAM_VIEW)
        .build()
        .map_err(|e| AppError::internal("build stream specification", e))?;
    dynamodb
        .update_table()
        .table_name(table)
        .stream_specification(spec)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("enable stream", e))?;
    Ok(true)
}
