//! Payment items and their immutable event history, in one partition:
//! `PAYMENT` is the current state, `EVENT#<seq>` one item per transition.

use super::labels::PaymentLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use crate::payments::Payment;
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

fn payment_item(payment: &Payment) -> Keyed<'_, Payment> {
    Keyed::new(payment_pk(&payment.tenant_id, &payment.payment_id), "PAYMENT", "payment", payment)
}

pub fn insert(table: &str, payment: &Payment) -> Result<Action<PaymentLabel>, AppError> {
    payment_item(payment).insert(table, PaymentLabel::Payment)
}

/// Replaces the payment with its next state if nobody transitioned it since
/// `next.version - 1` was read.
pub fn transition(table: &str, next: &Payment) -> Result<Action<PaymentLabel>, AppError> {
    Action::put(
        table,
        PaymentLabel::Payment,
        payment_item(next).item()?,
        Some("version = :expected"),
        Expr::default().value(":expected", value(next.version - 1)?),
    )
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
