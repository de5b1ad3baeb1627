//! The writes of one ledger movement of a payment: the ledger transaction,
//! an entry and a balance update per account (the overdraft rule is the
//! update's condition), the payment's history item, and the two outbox events
//! (the payment's and the ledger transaction's); and what the caller's
//! [`Grant`] pins: the owner of the account the caller acts on as a
//! condition of its balance update, or the caller's role on their directory entry.

use super::ownership::{Grant, Owner, Side};
use super::views::to_json;
use super::{Payment, Transition};
use crate::auth::Authenticated;
use crate::auth::principal::{ADMINISTRATORS, Actor, OPERATOR_ID, Principal};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::ledger::Movement;
use crate::outbox::OutboxEvent;
use crate::store::labels::PaymentLabel;
use crate::store::ledger::{
    self as ledger_store, BalanceUpdate, EntryRecord, LedgerTransactionRecord, Posting,
};
use crate::store::members;
use crate::store::payments::{self as payment_store, PaymentEventRecord};
use crate::store::tx::Tx;
use crate::tenant::TenantId;
use serde_json::json;
use time::OffsetDateTime;

/// Where, by whom and when a change is made.
pub(super) struct Scope<'a> {
    pub table: &'a str,
    pub correlation_id: &'a str,
    pub tenant: &'a TenantId,
    /// The caller; `None` for a job (the expiry of holds), recorded as the operator.
    pub caller: Option<&'a Principal>,
    pub now: OffsetDateTime,
}

impl<'a> Scope<'a> {
    /// A change a caller asks for.
    pub fn of(table: &'a str, ctx: &'a RequestContext, who: &'a Authenticated, now: OffsetDateTime) -> Self {
        Scope {
            table,
            correlation_id: &ctx.correlation_id,
            tenant: &who.tenant,
            caller: Some(&who.principal),
            now,
        }
    }

    pub fn actor(&self) -> Actor {
        self.caller.map_or_else(Actor::operator, Principal::actor)
    }

    /// The id of who made it, as the payment's history records it.
    fn actor_id(&self) -> &str {
        self.caller.map_or(OPERATOR_ID, |caller| caller.id.as_str())
    }
}

/// A payment after a transition, and the movement the transition makes.
pub(super) struct Change<'a> {
    pub payment: &'a Payment,
    pub movement: Movement,
    pub event_type: &'a str,
    pub amount: i64,
    /// Per payee leg: its authorized amount and its part of `amount`.
    pub shares: Vec<(i64, i64)>,
    /// The leg whose owner a [`Grant::Owns`] of the payee side pins (the
    /// one the caller owns: the first, or the leg a refund takes from).
    pub acting_leg: usize,
}

impl<'a> From<&'a Transition> for Change<'a> {
    fn from(transition: &'a Transition) -> Self {
        Change {
            payment: &transition.next,
            movement: transition.movement,
            event_type: transition.event_type,
            amount: transition.amount,
            shares: transition.shares.clone(),
            acting_leg: 0,
        }
    }
}

/// A transaction with the change's writes: both outbox events, the payment's
/// history item, the ledger transaction, per account (payer, then payee) its
/// entry and its balance update, and the check `grant` needs (`None`: a job's
/// change, which no caller's right permits).
pub(super) fn record_movement(
    scope: &Scope<'_>,
    change: &Change<'_>,
    grant: Option<Grant>,
) -> Result<Tx<PaymentLabel>, AppError> {
    let table = scope.table;
    let at = rfc3339(scope.now);
    // The transaction's id carries its time: entries are listed by time by key.
    let tx_id = crate::ids::new_id_at(scope.now);
    let transaction = ledger_transaction(scope, change, &tx_id, &at);
    let payment_event = payment_event(scope, change, &tx_id);
    let ledger_event = OutboxEvent::new(
        scope.tenant,
        "ledger_transaction",
        &tx_id,
        "ledger.transaction_recorded",
        scope.now,
        scope.correlation_id,
        to_json(&transaction)?,
    )
    .by(&scope.actor());
    let mut tx = Tx::new(table, &payment_event)?
        .event(&ledger_event)?
        .push(payment_store::insert_event(table, &history(scope, change, &tx_id, &at))?)
        .push(ledger_store::insert_transaction(table, &transaction)?);
    let caller = scope.caller.map(Owner::of);
    let legs = change.payment.legs();
    for (n, posting) in transaction.postings.iter().enumerate() {
        // The payer first, then the payee legs.
        let (side, label) = match n {
            0 => (Side::Payer, PaymentLabel::Payer),
            _ => (Side::Payee, PaymentLabel::Payee),
        };
        let pinned = grant == Some(Grant::Owns(side)) && (n == 0 || n - 1 == change.acting_leg);
        let update = BalanceUpdate {
            label,
            tenant: scope.tenant.as_str(),
            account_id: &posting.account_id,
            currency: &change.payment.currency,
            delta: posting.delta,
            owner: caller.as_ref().filter(|_| pinned),
            // Debits (and the payer's side) on shard 0; a leg's credits on its shard.
            shard: match n {
                0 => 0,
                _ if posting.delta.is_debit() => 0,
                _ => legs.get(n - 1).map_or(0, |leg| leg.shard),
            },
        };
        tx = tx
            .push(ledger_store::insert_entry(
                table,
                &entry(scope, change, (&tx_id, transaction.postings.len()), &at, posting),
            )?)
            .push(ledger_store::apply_delta(table, &update)?);
    }
    if let Some(caller) = scope.caller.filter(|_| grant == Some(Grant::Role)) {
        tx = tx.push(members::require_role_as(table, PaymentLabel::Caller, caller, &ADMINISTRATORS)?);
    }
    Ok(tx)
}

fn ledger_transaction(
    scope: &Scope<'_>,
    change: &Change<'_>,
    tx_id: &str,
    at: &str,
) -> LedgerTransactionRecord {
    let payment = change.payment;
    let (payer_delta, leg_deltas) = change.movement.split_deltas(&change.shares);
    let payer = Posting { account_id: payment.payer_account_id.clone(), delta: payer_delta };
    let legs = payment.legs().into_iter().zip(leg_deltas);
    let legs = legs.map(|(leg, delta)| Posting { account_id: leg.account_id, delta });
    LedgerTransactionRecord {
        tenant_id: scope.tenant.to_string(),
        tx_id: tx_id.to_owned(),
        payment_id: payment.payment_id.clone(),
        movement: change.movement.name().to_owned(),
        currency: payment.currency.clone(),
        postings: std::iter::once(payer).chain(legs).collect(),
        created_at: at.to_owned(),
    }
}

fn payment_event(scope: &Scope<'_>, change: &Change<'_>, tx_id: &str) -> OutboxEvent {
    let payment = change.payment;
    let mut payload = json!({
        "payment_id": payment.payment_id,
        "status": payment.status,
        "amount": change.amount,
        "currency": payment.currency,
        "authorized_amount": payment.amount,
        "captured_amount": payment.captured_amount,
        "refunded_amount": payment.refunded_amount,
        "payer_account_id": payment.payer_account_id,
        "payee_account_id": payment.payee_account_id,
        "ledger_tx_id": tx_id,
    });
    if !payment.splits.is_empty() {
        // Each leg's part of this movement's amount.
        let legs = payment.splits.iter().zip(&change.shares);
        let legs: Vec<_> =
            legs.map(|(leg, (_, part))| json!({ "account_id": leg.account_id, "amount": part })).collect();
        payload["splits"] = json!(legs);
    }
    OutboxEvent::new(
        scope.tenant,
        "payment",
        &payment.payment_id,
        change.event_type,
        scope.now,
        scope.correlation_id,
        payload,
    )
    .by(&scope.actor())
}

/// The payment's history item of this transition (its seq is the payment's version).
fn history(scope: &Scope<'_>, change: &Change<'_>, tx_id: &str, at: &str) -> PaymentEventRecord {
    let payment = change.payment;
    PaymentEventRecord {
        tenant_id: scope.tenant.to_string(),
        payment_id: payment.payment_id.clone(),
        seq: payment.version,
        event_type: change.event_type.to_owned(),
        status: payment.status.as_str().to_owned(),
        amount: change.amount,
        actor: scope.actor_id().to_owned(),
        correlation_id: scope.correlation_id.to_owned(),
        ledger_tx_id: tx_id.to_owned(),
        at: at.to_owned(),
    }
}

fn entry(
    scope: &Scope<'_>,
    change: &Change<'_>,
    (tx_id, postings): (&str, usize),
    at: &str,
    posting: &Posting,
) -> EntryRecord {
    EntryRecord {
        tenant_id: scope.tenant.to_string(),
        account_id: posting.account_id.clone(),
        tx_id: tx_id.to_owned(),
        payment_id: change.payment.payment_id.clone(),
        movement: change.movement.name().to_owned(),
        currency: change.payment.currency.clone(),
        delta: posting.delta,
        postings: u32::try_from(postings).ok(),
        created_at: at.to_owned(),
    }
}
