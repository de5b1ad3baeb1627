//! Payment services: authorize, capture, void, refund, read. Every command is
//! idempotent and costs at most two DynamoDB round trips fresh (one
//! consistent batch read of the idempotency record with the items the
//! operation needs, one transaction) and exactly one on replay (see
//! [`crate::idempotency::executor`]). The transaction carries the state
//! change, the ledger transaction and entries, both balance updates (overdraft
//! rule as a condition), the payment event, the completed idempotency record
//! and the outbox events: it all commits or none of it does.
//!
//! Who may do it ([`super::ownership`]) is decided from the same read:
//! authorize from the two accounts (their owners are then recorded on the
//! payment), capture, void and refund from the payment. The transaction pins
//! the decision: the caller as the owner of the account they act on (a
//! condition of its balance update) or their role (a condition on their own
//! directory entry). Reads answer 404 for what the caller may not see.

use super::input::{self, NewPayment, path_id};
use super::movement::{Change, Scope, record_movement};
use super::ownership::{self, Grant, Owner, Side};
use super::views::{payment_view, to_json};
use super::{Payment, PaymentStatus, Transition, TransitionError};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::idempotency::{Idempotent, Outcome, Prepared, execute};
use crate::ledger::{Delta, Movement};
use crate::store::Item;
use crate::store::labels::PaymentLabel;
use crate::store::ledger::{self as ledger_store, AccountRecord};
use crate::store::payments::{self as payment_store, Deadline};
use crate::store::tx::TxError;
use serde_json::Value;
use std::sync::OnceLock;

fn transition_error(error: TransitionError) -> AppError {
    match error {
        TransitionError::InvalidState(..) => AppError::Conflict(error.to_string()),
        TransitionError::Exceeds(_) => AppError::Unprocessable(error.to_string()),
        TransitionError::Expired(_) => AppError::Conflict(error.to_string()),
    }
}

/// Why the balance update on `side` failed its condition: the account did
/// not have the owner the decision pinned (`granted` = owning it), which
/// nothing makes happen (owners never change); the bound that keeps every
/// total within i64 (told apart with the account as it was, returned by the
/// failed transaction, and the `delta` that side would have taken); or its
/// overdraft rule.
fn refused_update(
    error: &TxError<PaymentLabel>,
    (side, label): (Side, PaymentLabel),
    delta: Option<&Delta>,
    granted: Option<Grant>,
    caller: &Owner,
) -> Option<AppError> {
    let failure = error.condition_failed(label)?;
    let account = failure.item.clone().and_then(|item| ledger_store::decode_account(item).ok());
    if granted == Some(Grant::Owns(side)) && account.as_ref().is_some_and(|account| account.owner != *caller)
    {
        return Some(AppError::forbidden("the account is not yours"));
    }
    let whose = if side == Side::Payer { "payer" } else { "payee" };
    let refusing = account.as_ref().zip(delta).filter(|(account, delta)| !account.status.takes(delta));
    if let Some((account, _)) = refusing {
        return Some(AppError::Conflict(format!("the {whose} account is {}", account.status.as_str())));
    }
    let beyond = delta.is_some_and(|delta| {
        failure.item.as_ref().is_some_and(|old| ledger_store::exceeds_range(old, delta))
    });
    Some(AppError::Unprocessable(if beyond {
        format!(
            "the {whose} account's totals would exceed what the ledger holds (9223372036854775807 minor units)"
        )
    } else {
        format!("insufficient funds: the {whose}'s available balance is too low")
    }))
}

/// The caller's role, re-checked on their directory entry, no longer allows it.
fn role_refused(error: &TxError<PaymentLabel>) -> Option<AppError> {
    error
        .failed(PaymentLabel::Caller)
        .map(|_| AppError::forbidden("your current role does not allow this payment operation"))
}

pub async fn create_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let input = input::new_payment(body)?;
    let amount = input.amount;
    let hold_ttl = (app.config.hold_ttl_seconds, app.config.max_hold_ttl_seconds);
    let who = request.who;
    let tenant = who.tenant.as_str();
    let scope = Scope::of(&app.config.table_name, ctx, who, app.now());
    let keys = vec![
        ledger_store::account_key(tenant, &input.payer_id),
        ledger_store::account_key(tenant, &input.payee_id),
    ];
    let caller = Owner::of(&who.principal);
    let granted = OnceLock::new();
    execute(
        app,
        request,
        keys,
        |items| authorize(&scope, who, input, hold_ttl, items, &granted),
        |error| {
            let (payer_delta, payee_delta) = Movement::Authorize { amount }.deltas();
            let granted = granted.get().copied();
            let (payer, payee) = ((Side::Payer, PaymentLabel::Payer), (Side::Payee, PaymentLabel::Payee));
            role_refused(error)
                .or_else(|| refused_update(error, payer, Some(&payer_delta), granted, &caller))
                .or_else(|| refused_update(error, payee, Some(&payee_delta), granted, &caller))
        },
    )
    .await
}

/// A new payment between the two accounts read, authorized in full, if the
/// caller may spend from the payer account. The payee account only has to
/// exist (paying into an account needs its id, not the right to see it).
fn authorize(
    scope: &Scope<'_>,
    who: &Authenticated,
    input: NewPayment,
    hold_ttl: (i64, i64),
    items: Vec<Option<Item>>,
    granted: &OnceLock<Grant>,
) -> Result<Prepared, AppError> {
    let mut accounts = items.into_iter().map(|item| item.map(ledger_store::decode_account).transpose());
    let payer = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payer account"))?;
    let grant = ownership::may_authorize(&who.principal, &payer.owner)?;
    let _ = granted.set(grant);
    let payee = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payee account"))?;
    check_currency(&input, &payer, &payee)?;
    let at = rfc3339(scope.now);
    let capture_before = input::capture_deadline(input.capture_before, scope.now, hold_ttl)?;
    let payment = Payment {
        payment_id: crate::ids::new_id(),
        tenant_id: who.tenant.as_str().to_owned(),
        amount: input.amount,
        currency: input.currency.code().to_owned(),
        payer_account_id: input.payer_id,
        payee_account_id: input.payee_id,
        payer_owner: payer.owner,
        payee_owner: payee.owner,
        description: input.description,
        metadata: input.metadata,
        status: PaymentStatus::Authorized,
        capture_before: Some(capture_before),
        captured_amount: 0,
        refunded_amount: 0,
        created_at: at.clone(),
        updated_at: at,
        version: 1,
    };
    let change = Change {
        payment: &payment,
        movement: Movement::Authorize { amount: input.amount },
        event_type: "payment.authorized",
        amount: input.amount,
    };
    let tx =
        record_movement(scope, &change, Some(grant))?.push(payment_store::insert(scope.table, &payment)?);
    Ok(Prepared { tx, status: 201, body: payment_view(&payment) })
}

/// Both accounts hold the payment's currency.
fn check_currency(input: &NewPayment, payer: &AccountRecord, payee: &AccountRecord) -> Result<(), AppError> {
    let currency = input.currency.code();
    if payer.currency != currency || payee.currency != currency {
        return Err(AppError::Unprocessable(format!(
            "currency mismatch: payment in {}, payer account in {}, payee account in {}",
            currency, payer.currency, payee.currency
        )));
    }
    Ok(())
}

/// Who may make a transition of a payment between accounts of these owners.
type Rule = fn(&crate::auth::Principal, &Owner, &Owner) -> Result<Grant, AppError>;

/// Capture, void and refund: read the payment, decide who may and the
/// transition, commit.
async fn transition(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    (status, rule): (u16, Rule),
    decide: impl FnOnce(&Payment, &str) -> Result<Transition, TransitionError>,
) -> Result<Outcome, AppError> {
    let payment_id = path_id(payment_id, "payment")?;
    let who = request.who;
    let scope = Scope::of(&app.config.table_name, ctx, who, app.now());
    let keys = vec![payment_store::payment_key(who.tenant.as_str(), &payment_id)];
    let caller = Owner::of(&who.principal);
    let granted = OnceLock::new();
    // What the transition moves, for telling a refused balance update apart.
    let movement = OnceLock::new();
    execute(
        app,
        request,
        keys,
        |items| {
            let current = items
                .into_iter()
                .next()
                .flatten()
                .map(payment_store::decode_payment)
                .transpose()?
                .ok_or(AppError::NotFound("payment"))?;
            let grant = rule(&who.principal, &current.payer_owner, &current.payee_owner)?;
            let _ = granted.set(grant);
            let now = rfc3339(scope.now);
            let change = decide(&current, &now).map_err(transition_error)?;
            let _ = movement.set(change.movement);
            // A capture commits only while the hold's deadline is still ahead
            // (the expiry job's transition requires it passed: one of them wins).
            let deadline = match change.movement {
                Movement::Capture { .. } => Deadline::Open(&now),
                _ => Deadline::Any,
            };
            let tx = record_movement(&scope, &Change::from(&change), Some(grant))?
                .push(payment_store::transition(scope.table, &change.next, deadline)?);
            Ok(Prepared { tx, status, body: payment_view(&change.next) })
        },
        |error| transition_cancelled(error, movement.get().copied(), granted.get().copied(), &caller),
    )
    .await
}

/// A transition lost to a concurrent one, a role no longer held, a refund
/// the payee cannot cover, or a total that would leave the ledger's range.
fn transition_cancelled(
    error: &TxError<PaymentLabel>,
    movement: Option<Movement>,
    granted: Option<Grant>,
    caller: &Owner,
) -> Option<AppError> {
    if let Some(failure) = error.failed(PaymentLabel::Payment) {
        let now = failure.item.clone().and_then(|item| payment_store::decode_payment(item).ok());
        return Some(AppError::Conflict(match now {
            Some(payment) if payment.status == PaymentStatus::Expired => {
                "authorization expired: the hold was released".into()
            }
            Some(payment)
                if payment.status == PaymentStatus::Authorized
                    && movement.is_some_and(|m| matches!(m, Movement::Capture { .. })) =>
            {
                "authorization expired".into()
            }
            _ => "the payment changed concurrently; fetch it and retry".into(),
        }));
    }
    let deltas = movement.map(|m| m.deltas());
    // A refund debits the payee; no other transition lowers a balance.
    let (payee, payer) = ((Side::Payee, PaymentLabel::Payee), (Side::Payer, PaymentLabel::Payer));
    role_refused(error)
        .or_else(|| refused_update(error, payee, deltas.as_ref().map(|d| &d.1), granted, caller))
        .or_else(|| refused_update(error, payer, deltas.as_ref().map(|d| &d.0), granted, caller))
}

pub async fn capture_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let amount = input::capture_amount(body)?;
    transition(app, ctx, request, payment_id, (200, ownership::may_settle), |p, at| p.capture(amount, at))
        .await
}

pub async fn void_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    input::empty(body)?;
    transition(app, ctx, request, payment_id, (200, ownership::may_settle), |p, at| p.void(at)).await
}

pub async fn refund_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let amount = input::refund_amount(body)?;
    transition(app, ctx, request, payment_id, (201, ownership::may_refund), |p, at| p.refund(amount, at))
        .await
}

pub async fn get_payment(app: &App, who: &Authenticated, payment_id: &str) -> Result<Value, AppError> {
    let payment_id = path_id(payment_id, "payment")?;
    let (payment, events) = payment_store::payment_with_events(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &payment_id,
    )
    .await?
    .filter(|(payment, _)| ownership::can_read(&who.principal, &[&payment.payer_owner, &payment.payee_owner]))
    .ok_or(AppError::NotFound("payment"))?;
    let mut view = payment_view(&payment);
    view["events"] = to_json(events)?;
    Ok(view)
}
