//! On-demand backups: created, listed and deleted.

use super::retention::BackupEntry;
use crate::app::App;
use crate::clock::from_sdk;
use crate::error::AppError;
use aws_sdk_dynamodb::types::{BackupStatus, BackupSummary, BackupTypeFilter};

pub(super) async fn create_backup(app: &App, table: &str, name: &str) -> Result<String, AppError> {
    let output = app
        .clients
        .dynamodb
        .create_backup()
        .table_name(table)
        .backup_name(name)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("create backup", e))?;
    output
        .backup_details()
        .map(|d| d.backup_arn().to_owned())
        .ok_or_else(|| AppError::Internal("CreateBackup returned no details".into()))
}

pub(super) async fn delete_backup(app: &App, arn: &str) -> Result<(), AppError> {
    app.clients
        .dynamodb
        .delete_backup()
        .backup_arn(arn)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("delete backup", e))?;
    Ok(())
}

/// The on-demand (USER) backups of `table`, every page. The table filter is
/// re-applied here: some implementations of ListBackups ignore parts of it.
/// ListBackups has no SDK paginator, so its cursor is followed by hand.
pub async fn list_backups(app: &App, table: &str) -> Result<Vec<BackupEntry>, AppError> {
    let mut entries = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let output = app
            .clients
            .dynamodb
            .list_backups()
            .table_name(table)
            .backup_type(BackupTypeFilter::User)
            .set_exclusive_start_backup_arn(start)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("list backups", e))?;
        entries.extend(output.backup_summaries().iter().filter_map(|summary| entry(table, summary)));
        start = output.last_evaluated_backup_arn().map(str::to_owned);
        if start.is_none() {
            return Ok(entries);
        }
    }
}

/// A listed backup, if it is an on-demand backup of `table` with an ARN and a creation time.
fn entry(table: &str, summary: &BackupSummary) -> Option<BackupEntry> {
    let user = summary.backup_type().is_none_or(|t| t.as_str() == "USER");
    if summary.table_name() != Some(table) || !user {
        return None;
    }
    let (arn, created) = (summary.backup_arn()?, summary.backup_creation_date_time().and_then(from_sdk)?);
    Some(BackupEntry {
        arn: arn.to_owned(),
        name: summary.backup_name().unwrap_or_default().to_owned(),
        created_at: created,
        available: matches!(summary.backup_status(), Some(BackupStatus::Available)),
    })
}

/// The newest available on-demand backup of `table`.
pub(super) async fn newest_backup(app: &App, table: &str) -> Result<Option<BackupEntry>, AppError> {
    let mut backups: Vec<BackupEntry> =
        list_backups(app, table).await?.into_iter().filter(|b| b.available).collect();
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name)));
    Ok(backups.into_iter().next())
}
