//! Runs one idempotent operation: one consistent batch read of the
//! idempotency record with the items the operation needs, the operation's
//! decision, one transaction carrying that decision and the completed record.
//! A fresh request costs those two round trips, a replay only the read. A
//! concurrent duplicate that wins the race is answered from the item the
//! cancellation returns.

use super::{Prior, StoredResponse, prior};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::idempotency::{self as store, IdempotencyRecord, RecordStatus};
use crate::store::labels::{IdempotentLabel, PaymentLabel};
use crate::store::tx::{Failure, Reason, Tx, TxError};
use crate::store::{self as items, Item};
use serde_json::Value;
use time::OffsetDateTime;

/// One idempotent request: who, which operation, which key, which request.
pub struct Idempotent<'a> {
    pub who: &'a Authenticated,
    pub operation: &'static str,
    pub key: String,
    pub fingerprint: String,
}

impl<'a> Idempotent<'a> {
    pub fn new(
        who: &'a Authenticated,
        operation: &'static str,
        key: String,
        target: &str,
        body: &Value,
    ) -> Self {
        let fingerprint = super::fingerprint(operation, target, body);
        Self { who, operation, key, fingerprint }
    }
}

/// The answer to an idempotent request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub body: Value,
    /// True when this is the stored answer to an earlier identical request.
    pub replayed: bool,
}

impl Outcome {
    fn replay(stored: StoredResponse) -> Self {
        Self { status: stored.status, body: stored.body, replayed: true }
    }

    pub fn into_reply(self) -> Result<crate::http::Reply, AppError> {
        let status =
            http::StatusCode::from_u16(self.status).map_err(|e| AppError::internal("stored status", e))?;
        let reply = crate::http::Reply::json(status, self.body)?;
        Ok(if self.replayed { reply.with_header(super::REPLAYED_HEADER, "true") } else { reply })
    }
}

/// What an operation decided from the items it read: its transaction and
/// its answer.
pub struct Prepared<L = PaymentLabel> {
    pub tx: Tx<L>,
    pub status: u16,
    pub body: Value,
}

/// The request's time, in the two units the record's expiry rules use.
#[derive(Clone, Copy)]
struct Now {
    at: OffsetDateTime,
    seconds: i64,
    millis: i64,
}

impl Now {
    fn of(app: &App) -> Self {
        let at = app.now();
        Self { at, seconds: at.unix_timestamp(), millis: (at.unix_timestamp_nanos() / 1_000_000) as i64 }
    }
}

/// Reads the idempotency record with `keys`, lets `prepare` decide from the
/// items read (in the order of `keys`), commits the decision together with
/// the completed record. A cancellation not caused by the record is given to
/// `on_cancel` to name (e.g. a failed balance condition); otherwise it is an
/// internal error.
pub async fn execute<L: IdempotentLabel>(
    app: &App,
    request: &Idempotent<'_>,
    keys: Vec<Item>,
    prepare: impl FnOnce(Vec<Option<Item>>) -> Result<Prepared<L>, AppError>,
    on_cancel: impl FnOnce(&TxError<L>) -> Option<AppError>,
) -> Result<Outcome, AppError> {
    let now = Now::of(app);
    let (record, legacy, items) = read(app, request, keys).await?;
    if legacy.is_some_and(|legacy| legacy.expires_at > now.seconds) {
        return Err(AppError::Unprocessable(
            "this Idempotency-Key was used before keys were scoped per caller; use a new key".into(),
        ));
    }
    if let Prior::Replay(stored) = prior(record.as_ref(), &request.fingerprint, now.seconds, now.millis)? {
        return Ok(Outcome::replay(stored));
    }
    let prepared = prepare(items)?;
    let table = &app.config.table_name;
    let record = completed(app, request, &prepared, now);
    let tx = prepared.tx.push(store::complete(table, &record, now.seconds, now.millis)?);
    let error = match tx.commit(&app.clients.dynamodb).await {
        Ok(()) => return Ok(Outcome { status: prepared.status, body: prepared.body, replayed: false }),
        Err(error) => error,
    };
    if let Some(failure) = error.failed(L::IDEMPOTENCY) {
        return lost_race(failure, request, now);
    }
    Err(on_cancel(&error).unwrap_or_else(|| error.into_app_error()))
}

/// The caller's record, a record of this key from the release before keys
/// were scoped per caller (until it expires, see [`crate::store::idempotency`])
/// and the items at `keys`, in one consistent round trip.
async fn read(
    app: &App,
    request: &Idempotent<'_>,
    keys: Vec<Item>,
) -> Result<(Option<IdempotencyRecord>, Option<IdempotencyRecord>, Vec<Option<Item>>), AppError> {
    let tenant = request.who.tenant.as_str();
    let scope = store::principal_scope(&request.who.principal);
    let mut all_keys = vec![
        store::record_key(tenant, &scope, request.operation, &request.key),
        store::legacy_record_key(tenant, request.operation, &request.key),
    ];
    all_keys.extend(keys);
    let mut found = items::get_many(&app.clients.dynamodb, &app.config.table_name, all_keys).await?;
    let record = found.remove(0).map(store::decode).transpose()?;
    let legacy = found.remove(0).map(store::decode).transpose()?;
    Ok((record, legacy, found))
}

/// The record answering later requests with this key as `prepared` answers this one.
fn completed<L>(app: &App, request: &Idempotent<'_>, prepared: &Prepared<L>, now: Now) -> IdempotencyRecord {
    IdempotencyRecord {
        tenant_id: request.who.tenant.as_str().to_owned(),
        principal: store::principal_scope(&request.who.principal),
        operation: request.operation.to_owned(),
        idempotency_key: request.key.clone(),
        status: RecordStatus::Completed,
        fingerprint: request.fingerprint.clone(),
        response_status: prepared.status,
        response_body: prepared.body.to_string(),
        created_at: rfc3339(now.at),
        expires_at: now.seconds + app.config.idempotency_ttl_seconds,
        in_progress_until_ms: None,
    }
}

/// The answer when the record's action failed: another request with the
/// same key committed first (its stored answer, or a mismatch), or is
/// committing right now (retry).
fn lost_race<L>(failure: &Failure<L>, request: &Idempotent<'_>, now: Now) -> Result<Outcome, AppError> {
    let winner = failure.item.clone().map(store::decode).transpose()?;
    match (&failure.reason, winner) {
        (Reason::ConditionalCheckFailed, Some(winner)) => {
            match prior(Some(&winner), &request.fingerprint, now.seconds, now.millis)? {
                Prior::Replay(stored) => Ok(Outcome::replay(stored)),
                Prior::Fresh => Err(AppError::InProgress { retry_after_seconds: 1 }),
            }
        }
        // Another transaction on this key is executing right now.
        _ => Err(AppError::InProgress { retry_after_seconds: 1 }),
    }
}
