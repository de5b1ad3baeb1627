//! Payment services: authorize, capture, void, refund, read. Every command is
//! idempotent and costs at most two DynamoDB round trips fresh (one
//! consistent batch read of the idempotency record with the items the
//! operation needs, one transaction) and exactly one on replay (see
//! [`crate::idempotency::executor`]). The transaction carries the state
//! change, the ledger transaction and entries, both balance updates (overdraft
//! rule as a condition), the payment event, the completed idempotency record
//! and the outbox events: it all commits or none of it does.

use super::input::{self, NewPayment, path_id};
use super::movement::{Change, Scope, record_movement};
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
use crate::store::labels::{Label, PaymentLabel};
use crate::store::ledger::{self as ledger_store, AccountRecord};
use crate::store::payments as payment_store;
use crate::store::tx::TxError;
use serde_json::Value;

fn transition_error(error: TransitionError) -> AppError {
    match error {
        TransitionError::InvalidState(..) => AppError::Conflict(error.to_string()),
        TransitionError::Exceeds(_) => AppError::Unprocessable(error.to_string()),
    }
}

const INSUFFICIENT_PAYER: &str = "insufficient funds: the payer's available balance is too low";
const INSUFFICIENT_PAYEE: &str = "insufficient funds: the payee's available balance is too low";

/// The balance update of `side` failed its condition: the overdraft rule
/// (`insufficient` says what to answer), or the bound that keeps every total
/// within i64, told apart with the account as it was (returned by the failed
/// transaction) and the delta that side would have taken.
fn balance_refused(
    error: &TxError<PaymentLabel>,
    side: PaymentLabel,
    delta: &Delta,
    insufficient: &str,
) -> Option<AppError> {
    let failure = error.condition_failed(side)?;
    let beyond = failure.item.as_ref().is_some_and(|old| ledger_store::exceeds_range(old, delta));
    Some(if beyond {
        AppError::Unprocessable(format!(
            "the {} account's totals would exceed what the ledger holds (9223372036854775807 minor units)",
            side.name()
        ))
    } else {
        AppError::Unprocessable(insufficient.to_owned())
    })
}

pub async fn create_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let input = input::new_payment(body)?;
    let amount = input.amount;
    let who = request.who;
    let tenant = who.tenant.as_str();
    let scope = Scope { table: &app.config.table_name, ctx, who, now: app.now() };
    let keys = vec![
        ledger_store::account_key(tenant, &input.payer_id),
        ledger_store::account_key(tenant, &input.payee_id),
    ];
    execute(
        app,
        request,
        keys,
        |items| authorize(&scope, input, items),
        |error| {
            let (payer, payee) = Movement::Authorize { amount }.deltas();
            balance_refused(error, PaymentLabel::Payer, &payer, INSUFFICIENT_PAYER)
                .or_else(|| balance_refused(error, PaymentLabel::Payee, &payee, INSUFFICIENT_PAYER))
        },
    )
    .await
}

/// A new payment between the two accounts read, authorized in full.
fn authorize(scope: &Scope<'_>, input: NewPayment, items: Vec<Option<Item>>) -> Result<Prepared, AppError> {
    let mut accounts = items.into_iter().map(|item| item.map(ledger_store::decode_account).transpose());
    let payer = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payer account"))?;
    let payee = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payee account"))?;
    check_currency(&input, &payer, &payee)?;
    let at = rfc3339(scope.now);
    let payment = Payment {
        payment_id: crate::ids::new_id(),
        tenant_id: scope.who.tenant.as_str().to_owned(),
        amount: input.amount,
        currency: input.currency.code().to_owned(),
        payer_account_id: input.payer_id,
        payee_account_id: input.payee_id,
        description: input.description,
        metadata: input.metadata,
        status: PaymentStatus::Authorized,
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
    let tx = record_movement(scope, &change)?.push(payment_store::insert(scope.table, &payment)?);
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

/// Capture, void and refund: read the payment, decide the transition, commit.
async fn transition(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    status: u16,
    decide: impl FnOnce(&Payment, &str) -> Result<Transition, TransitionError>,
) -> Result<Outcome, AppError> {
    let payment_id = path_id(payment_id, "payment")?;
    let who = request.who;
    let scope = Scope { table: &app.config.table_name, ctx, who, now: app.now() };
    let keys = vec![payment_store::payment_key(who.tenant.as_str(), &payment_id)];
    // What the transition moves, for telling a refused balance update apart.
    let movement = std::sync::OnceLock::new();
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
            let change = decide(&current, &rfc3339(scope.now)).map_err(transition_error)?;
            let _ = movement.set(change.movement);
            let tx = record_movement(&scope, &Change::from(&change))?
                .push(payment_store::transition(scope.table, &change.next)?);
            Ok(Prepared { tx, status, body: payment_view(&change.next) })
        },
        |error| transition_cancelled(error, movement.get().copied()),
    )
    .await
}

/// A transition lost to a concurrent one, a refund the payee cannot cover, or
/// a total that would leave the ledger's range.
fn transition_cancelled(error: &TxError<PaymentLabel>, movement: Option<Movement>) -> Option<AppError> {
    if error.failed(PaymentLabel::Payment).is_some() {
        return Some(AppError::Conflict("the payment changed concurrently; fetch it and retry".into()));
    }
    let (payer, payee) = movement?.deltas();
    // A refund debits the payee; nothing else a transition does lowers an available balance.
    balance_refused(error, PaymentLabel::Payee, &payee, INSUFFICIENT_PAYEE)
        .or_else(|| balance_refused(error, PaymentLabel::Payer, &payer, INSUFFICIENT_PAYER))
}

pub async fn capture_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let amount = input::capture_amount(body)?;
    transition(app, ctx, request, payment_id, 200, |p, at| p.capture(amount, at)).await
}

pub async fn void_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    input::empty(body)?;
    transition(app, ctx, request, payment_id, 200, |p, at| p.void(at)).await
}

pub async fn refund_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let amount = input::refund_amount(body)?;
    transition(app, ctx, request, payment_id, 201, |p, at| p.refund(amount, at)).await
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
    .ok_or(AppError::NotFound("payment"))?;
    let mut view = payment_view(&payment);
    view["events"] = to_json(events)?;
    Ok(view)
}
