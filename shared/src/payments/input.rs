//! The payments API's request bodies and the checks every field passes
//! before anything is read or written.

use super::ownership::Owner;
use super::{MAX_SPLITS, RefundFrom};
use crate::error::AppError;
use crate::ledger::{AccountStatus, MAX_SHARDS};
use crate::money::{Currency, amount_field, currency_field};
use crate::store::ledger::AccountChange;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_METADATA_KEYS: usize = 20;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;
const MAX_CLIENT_ID_CHARS: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccountBody {
    currency: String,
    #[serde(default)]
    allow_overdraft: bool,
    #[serde(default)]
    overdraft_limit: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<Value>,
    #[serde(default)]
    shards: Option<Value>,
}

/// A valid account creation request.
pub(super) struct NewAccount {
    pub currency: Currency,
    pub allow_overdraft: bool,
    /// Minor units; 0 without overdraft.
    pub overdraft_limit: i64,
    pub name: Option<String>,
    /// The owner an administrator asked for (default: the caller).
    pub owner: Option<Owner>,
    /// Balance shards, 1 to [`MAX_SHARDS`] (default 1): a hot account's.
    pub shards: u32,
}

pub(super) fn new_account(body: Value) -> Result<NewAccount, AppError> {
    let input: NewAccountBody = crate::http::from_value(body)?;
    let currency = currency_field("currency", &input.currency)?;
    let overdraft_limit = overdraft_limit(input.allow_overdraft, input.overdraft_limit.as_ref())?;
    let name = bounded_text("name", input.name, MAX_NAME_CHARS)?;
    let owner = input.owner.map(owner_field).transpose()?;
    let shards = match input.shards {
        None => 1,
        // As JSON Schema reads an integer: 8.0 is 8.
        Some(shards) => shards
            .as_number()
            .and_then(crate::http::whole_number)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_SHARDS).contains(n))
            .ok_or_else(|| {
                AppError::bad_request(
                    "shards",
                    format!("shards: must be a whole number from 1 to {MAX_SHARDS}"),
                )
            })?,
    };
    Ok(NewAccount { currency, allow_overdraft: input.allow_overdraft, overdraft_limit, name, owner, shards })
}

/// An overdraft is always bounded: `allow_overdraft: true` needs its limit.
pub(super) fn overdraft_limit(allow_overdraft: bool, limit: Option<&Value>) -> Result<i64, AppError> {
    let field = "overdraft_limit";
    match (allow_overdraft, limit) {
        (true, Some(limit)) => amount_field(field, limit),
        (true, None) => Err(AppError::bad_request(
            field,
            "overdraft_limit: is required with allow_overdraft: true (minor units)",
        )),
        (false, None) => Ok(0),
        (false, Some(_)) => Err(AppError::bad_request(
            field,
            "overdraft_limit: only accounts with allow_overdraft: true have one",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountChangeBody {
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    overdraft_limit: Option<Value>,
}

/// `PATCH /v1/accounts/{id}`: `{status?: active | frozen | closed, overdraft_limit?}`, at least one.
pub(super) fn account_change(body: Value) -> Result<AccountChange, AppError> {
    let input: AccountChangeBody = crate::http::from_value(body)?;
    let status = input
        .status
        .map(|status| {
            status.as_str().and_then(AccountStatus::parse).ok_or_else(|| {
                AppError::bad_request("status", "status: must be one of active, frozen, closed")
            })
        })
        .transpose()?;
    let overdraft_limit =
        input.overdraft_limit.map(|limit| amount_field("overdraft_limit", &limit)).transpose()?;
    if status.is_none() && overdraft_limit.is_none() {
        return Err(AppError::bad_request("status", "give status or overdraft_limit (or both)"));
    }
    Ok(AccountChange { status, overdraft_limit })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
}

/// `{"type": "tenant"}`, `{"type": "user", "id": <user id>}` or
/// `{"type": "client", "id": <client id>}`.
fn owner_field(value: Value) -> Result<Owner, AppError> {
    let invalid = || {
        AppError::bad_request(
            "owner",
            r#"owner: must be {"type": "tenant"} or {"type": "user" or "client", "id": an id of this API}"#,
        )
    };
    let body: OwnerBody = serde_json::from_value(value).map_err(|_| invalid())?;
    let client_id = |id: &str| {
        (1..=MAX_CLIENT_ID_CHARS).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    match (body.kind.as_str(), body.id) {
        ("tenant", None) => Ok(Owner::Tenant),
        ("user", Some(id)) if crate::ids::is_valid_id(&id) => Ok(Owner::User(id)),
        ("client", Some(id)) if client_id(&id) => Ok(Owner::Client(id)),
        _ => Err(invalid()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPaymentBody {
    amount: Value,
    currency: String,
    payer_account_id: String,
    #[serde(default)]
    payee_account_id: Option<String>,
    #[serde(default)]
    splits: Option<Vec<SplitBody>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    capture_before: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitBody {
    account_id: String,
    amount: Value,
}

/// A valid payment (authorization) request.
pub(super) struct NewPayment {
    pub amount: i64,
    pub currency: Currency,
    pub payer_id: String,
    /// The payees and their parts of the amount: one (`payee_account_id`,
    /// all of it) or the `splits`, in the request's order.
    pub payees: Vec<(String, i64)>,
    /// Whether the request named `splits` (the payment shows its legs).
    pub split: bool,
    pub description: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// When the hold may no longer be captured (checked against the clock and
    /// the configured bounds when the payment is made).
    pub capture_before: Option<OffsetDateTime>,
}

pub(super) fn new_payment(body: Value) -> Result<NewPayment, AppError> {
    let input: NewPaymentBody = crate::http::from_value(body)?;
    let amount = amount_field("amount", &input.amount)?;
    let currency = currency_field("currency", &input.currency)?;
    let payer_id = id_field("payer_account_id", &input.payer_account_id)?;
    let split = input.splits.is_some();
    let payees = match (input.payee_account_id, input.splits) {
        (Some(payee), None) => {
            let payee_id = id_field("payee_account_id", &payee)?;
            if payer_id == payee_id {
                return Err(AppError::bad_request(
                    "payee_account_id",
                    "payee_account_id: must differ from payer_account_id",
                ));
            }
            vec![(payee_id, amount)]
        }
        (None, Some(splits)) => splits_field(&payer_id, amount, splits)?,
        _ => {
            return Err(AppError::bad_request(
                "payee_account_id",
                "payee_account_id or splits: give exactly one of them",
            ));
        }
    };
    let description = bounded_text("description", input.description, MAX_DESCRIPTION_CHARS)?;
    check_metadata(&input.metadata)?;
    let capture_before = input
        .capture_before
        .map(|text| {
            crate::clock::parse_rfc3339(&text).ok_or_else(|| {
                AppError::bad_request("capture_before", "capture_before: must be an RFC 3339 date-time")
            })
        })
        .transpose()?;
    Ok(NewPayment {
        amount,
        currency,
        payer_id,
        payees,
        split,
        description,
        metadata: input.metadata,
        capture_before,
    })
}

/// The legs of a split payment: 1 to [`MAX_SPLITS`] distinct accounts, none
/// the payer, whose amounts sum to the payment's (the shape is a 400, what
/// no schema says, the sum and the distinct accounts, a 422).
fn splits_field(payer_id: &str, amount: i64, splits: Vec<SplitBody>) -> Result<Vec<(String, i64)>, AppError> {
    if splits.is_empty() || splits.len() > MAX_SPLITS {
        return Err(AppError::bad_request("splits", format!("splits: 1 to {MAX_SPLITS} payees")));
    }
    let mut legs: Vec<(String, i64)> = Vec::with_capacity(splits.len());
    for (n, split) in splits.into_iter().enumerate() {
        let account_id = id_field(&format!("splits[{n}].account_id"), &split.account_id)?;
        if account_id == payer_id || legs.iter().any(|(id, _)| *id == account_id) {
            return Err(AppError::Unprocessable(format!(
                "splits[{n}].account_id: every payee account once, none the payer's"
            )));
        }
        legs.push((account_id, amount_field(&format!("splits[{n}].amount"), &split.amount)?));
    }
    let sum = legs.iter().try_fold(0i64, |sum, (_, part)| sum.checked_add(*part));
    if sum != Some(amount) {
        return Err(AppError::Unprocessable("splits: the amounts must sum to the payment's amount".into()));
    }
    Ok(legs)
}

/// The hold's deadline as stored (UTC, whole seconds): the one asked for, or
/// `default_seconds` from `now`; after `now`, at most `max_seconds` from it.
pub(super) fn capture_deadline(
    asked: Option<OffsetDateTime>,
    now: OffsetDateTime,
    (default_seconds, max_seconds): (i64, i64),
) -> Result<String, AppError> {
    let deadline = asked.unwrap_or(now + time::Duration::seconds(default_seconds));
    let latest = now + time::Duration::seconds(max_seconds);
    let refused = || {
        AppError::Unprocessable(format!(
            "capture_before: must be in the future and at most {max_seconds} seconds from now"
        ))
    };
    // Compared before converting: any offset, even one whose UTC time is past
    // year 9999, is a time the comparison orders.
    if deadline > latest {
        return Err(refused());
    }
    let text = crate::clock::rfc3339(deadline.checked_to_offset(time::UtcOffset::UTC).ok_or_else(refused)?);
    if text <= crate::clock::rfc3339(now) {
        return Err(refused());
    }
    Ok(text)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    #[serde(default)]
    amount: Option<Value>,
}

/// The amount to capture (default: all of the authorization).
pub(super) fn capture_amount(body: Value) -> Result<Option<i64>, AppError> {
    let input: CaptureBody = crate::http::from_value(body)?;
    input.amount.as_ref().map(|a| amount_field("amount", a)).transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount: Value,
    #[serde(default)]
    account_id: Option<String>,
}

/// The refund's amount and the leg it takes from (default: all, pro rata).
pub(super) fn refund(body: Value) -> Result<(i64, RefundFrom), AppError> {
    let input: RefundBody = crate::http::from_value(body)?;
    let amount = amount_field("amount", &input.amount)?;
    let from = match input.account_id {
        Some(id) => RefundFrom::Leg(id_field("account_id", &id)?),
        None => RefundFrom::ProRata,
    };
    Ok((amount, from))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

/// A void takes no fields.
pub(super) fn empty(body: Value) -> Result<(), AppError> {
    let _: EmptyBody = crate::http::from_value(body)?;
    Ok(())
}

fn id_field(field: &str, value: &str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(value) {
        Ok(value.to_owned())
    } else {
        Err(AppError::bad_request(field, format!("{field}: must be an id returned by this API")))
    }
}

/// Ids in paths: a malformed one names nothing that exists.
pub(super) fn path_id(value: &str, what: &'static str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(value) { Ok(value.to_owned()) } else { Err(AppError::NotFound(what)) }
}

fn bounded_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, AppError> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(AppError::bad_request(field, format!("{field}: must be at most {max} characters")))
        }
        other => Ok(other),
    }
}

fn check_metadata(metadata: &Option<BTreeMap<String, String>>) -> Result<(), AppError> {
    let Some(metadata) = metadata else { return Ok(()) };
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(AppError::bad_request("metadata", format!("metadata: at most {MAX_METADATA_KEYS} keys")));
    }
    for (key, value) in metadata {
        if key.is_empty()
            || key.chars().count() > MAX_METADATA_KEY_CHARS
            || value.chars().count() > MAX_METADATA_VALUE_CHARS
        {
            return Err(AppError::bad_request(
                format!("metadata.{key}"),
                format!(
                    "metadata: keys 1 to {MAX_METADATA_KEY_CHARS} characters, values at most {MAX_METADATA_VALUE_CHARS}"
                ),
            ));
        }
    }
    Ok(())
}
