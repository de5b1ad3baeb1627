//! Point-in-time recovery: kept on, and its window reported.

use crate::app::App;
use crate::clock::{from_sdk, rfc3339};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, PointInTimeRecoveryStatus};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PitrState {
    /// PITR was off when the run started (and has been turned back on).
    pub was_disabled: bool,
    pub enabled: bool,
    pub earliest_restorable: Option<String>,
    pub latest_restorable: Option<String>,
    /// Now minus the latest restorable time: the recovery point actually achieved.
    pub lag_seconds: Option<f64>,
}

/// PITR on, turning it back on (and saying so at error level) if it was off.
pub async fn ensure_pitr(app: &App, table: &str, now: OffsetDateTime) -> Result<PitrState, AppError> {
    let dynamodb = &app.clients.dynamodb;
    let mut state = describe_pitr(app, table, now).await?;
    if !state.enabled {
        tracing::error!(table, "point-in-time recovery was DISABLED on a stack table; turning it back on");
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| AppError::internal("build PITR specification", e))?;
        dynamodb
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("enable PITR", e))?;
        state = describe_pitr(app, table, now).await?;
        state.was_disabled = true;
    }
    Ok(state)
}

async fn describe_pitr(app: &App, table: &str, now: OffsetDateTime) -> Result<PitrState, AppError> {
    let output = app
        .clients
        .dynamodb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("describe continuous backups", e))?;
    let description =
        output.continuous_backups_description().and_then(|d| d.point_in_time_recovery_description());
    let status = description.and_then(|d| d.point_in_time_recovery_status());
    let latest = description.and_then(|d| d.latest_restorable_date_time()).and_then(from_sdk);
    let earliest = description.and_then(|d| d.earliest_restorable_date_time()).and_then(from_sdk);
    Ok(PitrState {
        was_disabled: false,
        enabled: matches!(status, Some(PointInTimeRecoveryStatus::Enabled)),
        earliest_restorable: earliest.map(rfc3339),
        latest_restorable: latest.map(rfc3339),
        lag_seconds: latest.map(|at| ((now - at).as_seconds_f64()).max(0.0)),
    })
}
