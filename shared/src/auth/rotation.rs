//! Signing-key rotation, the operator's `signing-keys` job (docs/RUNBOOK.md):
//!
//! - `rotate`: a new KMS key (ECC P-256, sign/verify) becomes current: the
//!   previous alias is pointed at the key that was current, the signing
//!   alias at the new one. Tokens of the old key keep verifying, since it
//!   stays published (JWKS, verification) as the previous key.
//! - `retire`: once the old key's last token has expired (access-token
//!   lifetime + the containers' key cache + a minute of skew after the
//!   rotation), the previous alias is deleted: the key is no longer
//!   published and its tokens no longer verify. A rotation needs the previous
//!   key retired first, so at most two keys are ever published.
//! - `status`: the current and the previous key, and when the previous one
//!   can be retired.

use super::keys::{self, key_id_of};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::signing_keys::{self, RotationRecord};
use aws_sdk_kms::operation::describe_key::DescribeKeyError;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Status,
    Rotate,
    Retire,
}

#[derive(Debug, Serialize)]
pub struct KeyStatus {
    pub current: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    /// When `retire` will accept to retire the previous key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retirable_at: Option<String>,
}

pub async fn run(app: &App, command: Command) -> Result<KeyStatus, AppError> {
    match command {
        Command::Status => status(app).await,
        Command::Rotate => rotate(app).await,
        Command::Retire => retire(app).await,
    }
}

fn aliases(app: &App) -> Result<(&str, &str), AppError> {
    let current = app.config.token_signing_key_alias.as_deref();
    let previous = app.config.token_previous_key_alias.as_deref();
    match (current, previous) {
        (Some(current), Some(previous)) => Ok((current, previous)),
        _ => Err(AppError::Internal(
            "TOKEN_SIGNING_KEY_ALIAS and TOKEN_PREVIOUS_KEY_ALIAS are required".into(),
        )),
    }
}

/// The key an alias points at, if the alias exists.
async fn target(app: &App, alias: &str) -> Result<Option<String>, AppError> {
    match app.clients.kms.describe_key().key_id(alias).send().await {
        Ok(output) => Ok(output.key_metadata().map(|m| key_id_of(m.key_id()).to_owned())),
        Err(error) if matches!(error.as_service_error(), Some(DescribeKeyError::NotFoundException(_))) => {
            Ok(None)
        }
        Err(error) => Err(AppError::from_sdk("describe a signing-key alias", error)),
    }
}

/// The earliest time the previous key of a rotation at `rotated_at` has no live token.
fn retirable_at(app: &App, rotated_at: i64) -> i64 {
    rotated_at + app.config.access_token_ttl_seconds + keys::CACHE_SECONDS + 60
}

fn at(seconds: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(seconds).ok().map(rfc3339)
}

async fn status(app: &App) -> Result<KeyStatus, AppError> {
    let (current_alias, previous_alias) = aliases(app)?;
    let current = target(app, current_alias)
        .await?
        .ok_or_else(|| AppError::Internal("the signing alias does not exist".into()))?;
    let previous = target(app, previous_alias).await?;
    let record = signing_keys::find(&app.clients.dynamodb, &app.config.table_name).await?;
    let rotated_at = record.and_then(|r| r.rotated_at);
    Ok(KeyStatus {
        current,
        retirable_at: previous.as_ref().and(rotated_at).and_then(|t| at(retirable_at(app, t))),
        previous,
        rotated_at: rotated_at.and_then(at),
    })
}

async fn rotate(app: &App) -> Result<KeyStatus, AppError> {
    let (current_alias, previous_alias) = aliases(app)?;
    let before = status(app).await?;
    if let Some(previous) = before.previous {
        return Err(AppError::Conflict(format!("retire the previous key {previous} first")));
    }
    let kms = &app.clients.kms;
    let created = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("Signs ES256 access tokens (rotated in by the signing-keys job)")
        .send()
        .await
        .map_err(|e| AppError::from_sdk("create a signing key", e))?;
    let new = created
        .key_metadata()
        .map(|m| key_id_of(m.key_id()).to_owned())
        .ok_or_else(|| AppError::Internal("KMS returned no key".into()))?;
    kms.create_alias()
        .alias_name(previous_alias)
        .target_key_id(&before.current)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("point the previous alias", e))?;
    kms.update_alias()
        .alias_name(current_alias)
        .target_key_id(&new)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("point the signing alias", e))?;
    let (dynamodb, table) = (&app.clients.dynamodb, &app.config.table_name);
    let mut record = signing_keys::find(dynamodb, table).await?.unwrap_or_default();
    record = RotationRecord {
        current: new.clone(),
        previous: Some(before.current.clone()),
        rotated_at: Some(app.now().unix_timestamp()),
        ..record
    };
    signing_keys::put(dynamodb, table, &record).await?;
    tracing::warn!(current = %new, previous = %before.current, "signing key rotated");
    status(app).await
}

async fn retire(app: &App) -> Result<KeyStatus, AppError> {
    let (_, previous_alias) = aliases(app)?;
    let before = status(app).await?;
    let Some(previous) = before.previous.clone() else {
        return Err(AppError::Conflict("there is no previous key to retire".into()));
    };
    let (dynamodb, table) = (&app.clients.dynamodb, &app.config.table_name);
    let record = signing_keys::find(dynamodb, table).await?.unwrap_or_default();
    let now = app.now().unix_timestamp();
    if let Some(rotated_at) = record.rotated_at.filter(|t| retirable_at(app, *t) > now) {
        let when = at(retirable_at(app, rotated_at)).unwrap_or_default();
        return Err(AppError::Conflict(format!("tokens of the previous key may live until {when}")));
    }
    app.clients
        .kms
        .delete_alias()
        .alias_name(previous_alias)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("delete the previous alias", e))?;
    let mut retired = record.retired.clone();
    retired.push(previous.clone());
    let record = RotationRecord { current: before.current.clone(), previous: None, retired, ..record };
    signing_keys::put(dynamodb, table, &record).await?;
    tracing::warn!(retired = %previous, "signing key retired");
    status(app).await
}
