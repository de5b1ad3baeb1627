//! Payment items and their immutable event history, in one partition:
//! `PAYMENT` is the current state, `EVENT#<seq>` one item per transition.
//!
//! An authorized payment with a `capture_before` is also in the sparse
//! `gsi2` (beside the pending outbox, in partitions of its own):
//! `gsi2pk = HOLDS#EXPIRING#<shard>`, `gsi2sk = <capture_before>#<payment id>`,
//! so the expiry job finds the holds whose deadline passed with a range query
//! per shard, oldest first, never a scan. Every transition rewrites the item
//! without them: a captured, voided or expired payment leaves the index.

use super::labels::PaymentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use crate::payments::{Payment, PaymentStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEventRecord {
    pub tenant_id: String,
    pub payment_id: String,
    pub seq: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: String,
    pub amount: i64,
    /// The id of the user or client whose token made the request.
    pub actor: String,
    pub correlation_id: String,
    pub ledger_tx_id: String,
    pub at: String,
}

fn payment_pk(tenant: &str, payment_id: &str) -> String {
    tenant_pk(tenant, &format!("PAYMENT#{payment_id}"))
}

pub fn payment_key(tenant: &str, payment_id: &str) -> Item {
    key(payment_pk(tenant, payment_id), "PAYMENT")
}

pub fn decode_payment(item: Item) -> Result<Payment, AppError> {
    from_item(item)
}

/// Shards of the expiring-holds index (a payment's shard: a hash of its id),
/// so one busy period is not one hot index partition.
pub const EXPIRY_SHARDS: u32 = 4;

pub fn expiry_partition(shard: u32) -> String {
    format!("HOLDS#EXPIRING#{shard}")
}

fn expiry_shard(payment_id: &str) -> u32 {
    payment_id.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b.into())) % EXPIRY_SHARDS
}

fn payment_item(payment: &Payment) -> Keyed<'_, Payment> {
    let item = Keyed::new(payment_pk(&payment.tenant_id, &payment.payment_id), "PAYMENT", "payment", payment);
    match (&payment.capture_before, payment.status) {
        (Some(deadline), PaymentStatus::Authorized) => item.sparse(
            expiry_partition(expiry_shard(&payment.payment_id)),
            format!("{deadline}#{}", payment.payment_id),
        ),
        _ => item,
    }
}

pub fn insert(table: &str, payment: &Payment) -> Result<Action<PaymentLabel>, AppError> {
    payment_item(payment).insert(table, PaymentLabel::Payment)
}

/// What a transition requires of the hold's deadline, at the time given
/// (RFC 3339 text as [`crate::clock::rfc3339`] writes it: it orders as time).
#[derive(Debug, Clone, Copy)]
pub enum Deadline<'a> {
    /// No requirement (void, refund).
    Any,
    /// A capture: not yet passed, if the payment has one.
    Open(&'a str),
    /// The expiry: passed.
    Passed(&'a str),
}

/// Replaces the payment with its next state if nobody transitioned it since
/// `next.version - 1` was read, and the deadline is as required.
pub fn transition(
    table: &str,
    next: &Payment,
    deadline: Deadline<'_>,
) -> Result<Action<PaymentLabel>, AppError> {
    let expr = Expr::default().value(":expected", value(next.version - 1)?);
    let (condition, expr) = match deadline {
        Deadline::Any => ("version = :expected", expr),
        Deadline::Open(now) => (
            "version = :expected AND (attribute_not_exists(capture_before) OR capture_before > :now)",
            expr.value(":now", value(now)?),
        ),
        Deadline::Passed(now) => {
            ("version = :expected AND capture_before <= :now", expr.value(":now", value(now)?))
        }
    };
    Action::put(table, PaymentLabel::Payment, payment_item(next).item()?, Some(condition), expr)
}

/// One page of the payments whose hold's deadline is `now` or earlier, in one
/// shard of the expiring-holds index, oldest first, after `after` (the
/// previous page's last key; a new run needs none: what it released left
/// the index). The index is eventually
/// consistent: a payment may be listed a moment after it was captured; the
/// expiry's transition is conditional on the version read here.
pub async fn expired_holds(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    (shard, now): (u32, &str),
    limit: i32,
    after: Option<Item>,
) -> Result<(Vec<Payment>, Option<Item>), AppError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let partition = expiry_partition(shard);
    let output = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi2")
        .key_condition_expression("gsi2pk = :pk AND gsi2sk < :bound")
        .expression_attribute_values(":pk", AttributeValue::S(partition))
        // `<deadline>#<id>` for every deadline up to `now` inclusive ('$' follows '#').
        .expression_attribute_values(":bound", AttributeValue::S(format!("{now}$")))
        .limit(limit)
        .set_exclusive_start_key(after)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("list expired holds", e))?;
    let next = output.last_evaluated_key().cloned();
    let payments =
        output.items.unwrap_or_default().into_iter().map(decode_payment).collect::<Result<_, _>>()?;
    Ok((payments, next))
}

pub fn insert_event(table: &str, event: &PaymentEventRecord) -> Result<Action<PaymentLabel>, AppError> {
    Keyed::new(
        payment_pk(&event.tenant_id, &event.payment_id),
        format!("EVENT#{:06}", event.seq),
        "payment_event",
        event,
    )
    .insert(table, PaymentLabel::PaymentEvent)
}

/// The payment item alone (strongly consistent): for the verify job.
pub async fn read(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    payment_id: &str,
) -> Result<Option<Payment>, AppError> {
    super::get(dynamodb, table, payment_key(tenant, payment_id)).await?.map(decode_payment).transpose()
}

/// The payment and its events, oldest first, in one consistent query.
pub async fn payment_with_events(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    payment_id: &str,
) -> Result<Option<(Payment, Vec<PaymentEventRecord>)>, AppError> {
    let items = super::query_all(dynamodb, table, payment_pk(tenant, payment_id), true).await?;
    let mut payment = None;
    let mut events = Vec::new();
    for item in items {
        match item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) {
            Some("payment") => payment = Some(decode_payment(item)?),
            Some("payment_event") => events.push(from_item::<PaymentEventRecord>(item)?),
            _ => {}
        }
    }
    events.sort_by_key(|e| e.seq);
    Ok(payment.map(|p| (p, events)))
}
