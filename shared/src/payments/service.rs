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
use super::{Leg, Payment, PaymentStatus, RefundFrom, Transition, TransitionError};
use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::ADMINISTRATORS;
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

/// What a movement's transaction moves on each account, and whose owner it
/// pinned (the account the caller acts on when owning it permits the change).
#[derive(Debug, Clone, Default)]
struct Moved {
    deltas: Vec<(String, Delta)>,
    pinned: Option<String>,
}

/// Why a balance update (`label`: the payer's, or a payee leg's) failed its
/// condition, told apart with the account as it was (returned by the failed
/// transaction): the pinned account did not have the caller as its owner,
/// which nothing makes happen (owners never change); the account's state
/// (frozen, closed); the bound that keeps every total within i64; or its
/// overdraft rule. A hot account's shortfall is noted in `sharded` (its
/// shard 0 may lack funds its credit shards hold: see [`with_sweep`]).
fn refused_update(
    error: &TxError<PaymentLabel>,
    label: PaymentLabel,
    moved: &Moved,
    caller: &Owner,
    sharded: &OnceLock<String>,
) -> Option<AppError> {
    let failure = error.condition_failed(label)?;
    let account = failure.item.as_ref().and_then(ledger_store::holder);
    let account_id = account.as_ref().map(|account| account.account_id.as_str());
    if moved.pinned.is_some()
        && moved.pinned.as_deref() == account_id
        && account.as_ref().is_some_and(|a| a.owner != *caller)
    {
        return Some(AppError::forbidden("the account is not yours"));
    }
    let whose = if label == PaymentLabel::Payer { "payer" } else { "payee" };
    let delta = moved.deltas.iter().find(|(id, _)| Some(id.as_str()) == account_id).map(|(_, delta)| delta);
    let refusing = account.as_ref().zip(delta).filter(|(account, delta)| !account.status.takes(delta));
    if let Some((account, _)) = refusing {
        return Some(AppError::Conflict(format!("the {whose} account is {}", account.status.as_str())));
    }
    let beyond = delta.is_some_and(|delta| {
        failure.item.as_ref().is_some_and(|old| ledger_store::exceeds_range(old, delta))
    });
    if !beyond && let Some(hot) = account.as_ref().filter(|a| a.shards > 1) {
        let _ = sharded.set(hot.account_id.clone());
    }
    Some(AppError::Unprocessable(if beyond {
        format!(
            "the {whose} account's totals would exceed what the ledger holds (9223372036854775807 minor units)"
        )
    } else {
        format!("insufficient funds: the {whose}'s available balance is too low")
    }))
}

/// What a movement of `payment` moves on each account (payer first).
fn moved(payment: &Payment, movement: Movement, shares: &[(i64, i64)], pinned: Option<String>) -> Moved {
    let (payer, legs) = movement.split_deltas(shares);
    let legs = payment.legs().into_iter().map(|leg| leg.account_id).zip(legs);
    Moved { deltas: std::iter::once((payment.payer_account_id.clone(), payer)).chain(legs).collect(), pinned }
}

/// The caller's role, re-checked on their directory entry, no longer allows it.
fn role_refused(error: &TxError<PaymentLabel>) -> Option<AppError> {
    error
        .failed(PaymentLabel::Caller)
        .map(|_| AppError::forbidden("your current role does not allow this payment operation"))
}

/// A command that a hot account's shard 0 refused for funds: its credit
/// shards' posted credits are swept into shard 0 ([`ledger_store::sweep`],
/// one query and one transaction) and the command runs once more, decided
/// afresh (a refused command stored nothing). The overdraft rule stays a
/// condition on shard 0, and exact: it refuses only what the account's
/// whole balance, as of the sweep, cannot cover. Accounts of one shard never
/// get here: their round trips are unchanged.
async fn with_sweep<F, Fut>(app: &App, tenant: &str, mut command: F) -> Result<Outcome, AppError>
where
    F: FnMut(OnceLock<String>) -> Fut,
    Fut: std::future::Future<Output = (Result<Outcome, AppError>, OnceLock<String>)>,
{
    let (result, sharded) = command(OnceLock::new()).await;
    match (result, sharded.get()) {
        (Err(refused), Some(account_id)) => {
            if super::accounts::sweep_shards(app, tenant, account_id).await? {
                command(OnceLock::new()).await.0
            } else {
                Err(refused)
            }
        }
        (result, _) => result,
    }
}

pub async fn create_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let tenant = request.who.tenant.as_str();
    with_sweep(app, tenant, |sharded| {
        let body = body.clone();
        async move {
            let result = create_payment_once(app, ctx, request, body, &sharded).await;
            (result, sharded)
        }
    })
    .await
}

async fn create_payment_once(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
    sharded: &OnceLock<String>,
) -> Result<Outcome, AppError> {
    let input = input::new_payment(body)?;
    let amount = input.amount;
    let hold_ttl = (app.config.hold_ttl_seconds, app.config.max_hold_ttl_seconds);
    let who = request.who;
    let tenant = who.tenant.as_str();
    let scope = Scope::of(&app.config.table_name, ctx, who, app.now());
    // The payer's account and every payee's, in the same read as the idempotency record.
    let accounts = std::iter::once(&input.payer_id).chain(input.payees.iter().map(|(id, _)| id));
    let keys = accounts.map(|id| ledger_store::account_key(tenant, id)).collect();
    let caller = Owner::of(&who.principal);
    let granted = OnceLock::new();
    let (payer_delta, leg_deltas) = Movement::Authorize { amount }
        .split_deltas(&input.payees.iter().map(|(_, part)| (*part, *part)).collect::<Vec<_>>());
    let legs = input.payees.iter().map(|(id, _)| id.clone()).zip(leg_deltas);
    let mut moved = Moved {
        deltas: std::iter::once((input.payer_id.clone(), payer_delta)).chain(legs).collect(),
        pinned: None,
    };
    let payer_id = input.payer_id.clone();
    execute(
        app,
        request,
        keys,
        |items| authorize(&scope, who, input, hold_ttl, items, &granted),
        |error| {
            if granted.get() == Some(&Grant::Owns(Side::Payer)) {
                moved.pinned = Some(payer_id.clone());
            }
            role_refused(error)
                .or_else(|| refused_update(error, PaymentLabel::Payer, &moved, &caller, sharded))
                .or_else(|| refused_update(error, PaymentLabel::Payee, &moved, &caller, sharded))
        },
    )
    .await
}

/// A new payment from the payer account read to the payee accounts read (one,
/// or a split payment's legs), authorized in full, if the caller may spend
/// from the payer account. The payee accounts only have to exist (paying
/// into an account needs its id, not the right to see it).
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
    let payment_id = crate::ids::new_id();
    let mut payees = Vec::with_capacity(input.payees.len());
    for (leg, (account_id, amount)) in input.payees.iter().enumerate() {
        let payee = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payee account"))?;
        check_currency(&input, &payer, &payee)?;
        payees.push(Leg {
            account_id: account_id.clone(),
            owner: payee.owner,
            amount: *amount,
            captured_amount: 0,
            refunded_amount: 0,
            shard: crate::ledger::credit_shard(&payment_id, leg, payee.shards),
        });
    }
    let first =
        payees.first().cloned().ok_or_else(|| AppError::Internal("a payment without a payee".into()))?;
    let at = rfc3339(scope.now);
    let capture_before = input::capture_deadline(input.capture_before, scope.now, hold_ttl)?;
    let payment = Payment {
        payment_id,
        tenant_id: who.tenant.as_str().to_owned(),
        amount: input.amount,
        currency: input.currency.code().to_owned(),
        payer_account_id: input.payer_id,
        payee_account_id: first.account_id,
        payee_shard: first.shard,
        payer_owner: payer.owner,
        payee_owner: first.owner,
        description: input.description,
        metadata: input.metadata,
        status: PaymentStatus::Authorized,
        capture_before: Some(capture_before),
        captured_amount: 0,
        refunded_amount: 0,
        splits: if input.split { payees } else { Vec::new() },
        created_at: at.clone(),
        updated_at: at,
        version: 1,
    };
    let change = Change {
        payment: &payment,
        movement: Movement::Authorize { amount: input.amount },
        event_type: "payment.authorized",
        amount: input.amount,
        shares: payment.authorized_shares(),
        acting_leg: 0,
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

/// The payee a capture or void acts for: the first (the only one, unless split).
fn first_payee(payment: &Payment) -> Result<(Owner, usize), AppError> {
    Ok((payment.payee_owner.clone(), 0))
}

/// Every owner of the payment's accounts: the payer's and each leg's.
fn owners(payment: &Payment) -> Vec<Owner> {
    std::iter::once(payment.payer_owner.clone())
        .chain(payment.legs().into_iter().map(|leg| leg.owner))
        .collect()
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
    (status, rule, sharded): (u16, Rule, &OnceLock<String>),
    acting: impl FnOnce(&Payment) -> Result<(Owner, usize), AppError>,
    decide: impl FnOnce(&Payment, &str) -> Result<Transition, TransitionError>,
) -> Result<Outcome, AppError> {
    let payment_id = path_id(payment_id, "payment")?;
    let who = request.who;
    let scope = Scope::of(&app.config.table_name, ctx, who, app.now());
    let keys = vec![payment_store::payment_key(who.tenant.as_str(), &payment_id)];
    let caller = Owner::of(&who.principal);
    // What the transition moves, for telling a refused balance update apart.
    let movement = OnceLock::new();
    let moves = OnceLock::new();
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
            // The payee the caller acts for: the first, or the leg a refund takes from.
            let (payee_owner, acting_leg) = acting(&current)?;
            let grant = rule(&who.principal, &current.payer_owner, &payee_owner)?;
            let now = rfc3339(scope.now);
            let change = decide(&current, &now).map_err(transition_error)?;
            let _ = movement.set(change.movement);
            let pinned = match grant {
                Grant::Owns(Side::Payer) => Some(current.payer_account_id.clone()),
                Grant::Owns(Side::Payee) => current.legs().get(acting_leg).map(|leg| leg.account_id.clone()),
                Grant::Role => None,
            };
            let _ = moves.set(moved(&current, change.movement, &change.shares, pinned));
            // A capture commits only while the hold's deadline is still ahead
            // (the expiry job's transition requires it passed: one of them wins).
            let deadline = match change.movement {
                Movement::Capture { .. } => Deadline::Open(&now),
                _ => Deadline::Any,
            };
            let tx = record_movement(&scope, &Change { acting_leg, ..Change::from(&change) }, Some(grant))?
                .push(payment_store::transition(scope.table, &change.next, deadline)?);
            Ok(Prepared { tx, status, body: payment_view(&change.next) })
        },
        |error| transition_cancelled(error, movement.get().copied(), moves.get(), &caller, sharded),
    )
    .await
}

/// A transition lost to a concurrent one, a role no longer held, a refund
/// the payee cannot cover, or a total that would leave the ledger's range.
fn transition_cancelled(
    error: &TxError<PaymentLabel>,
    movement: Option<Movement>,
    moved: Option<&Moved>,
    caller: &Owner,
    sharded: &OnceLock<String>,
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
    let moved = moved.cloned().unwrap_or_default();
    // A refund debits the payees; no other transition lowers a balance.
    role_refused(error)
        .or_else(|| refused_update(error, PaymentLabel::Payee, &moved, caller, sharded))
        .or_else(|| refused_update(error, PaymentLabel::Payer, &moved, caller, sharded))
}

pub async fn capture_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let amount = input::capture_amount(body)?;
    let unsharded = OnceLock::new();
    let settle = (200, ownership::may_settle as Rule, &unsharded);
    transition(app, ctx, request, payment_id, settle, first_payee, |p, at| p.capture(amount, at)).await
}

pub async fn void_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    input::empty(body)?;
    let unsharded = OnceLock::new();
    let settle = (200, ownership::may_settle as Rule, &unsharded);
    transition(app, ctx, request, payment_id, settle, first_payee, |p, at| p.void(at)).await
}

pub async fn refund_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let (amount, from) = input::refund(body)?;
    // The payee a refund takes from: its leg's owner may refund it; a pro rata
    // refund of several legs takes from accounts of several owners, which only
    // the tenant's owners and admins may do.
    let principal = &request.who.principal;
    let acting = |p: &Payment| {
        let legs = p.legs();
        let index = match &from {
            RefundFrom::Leg(id) => legs.iter().position(|leg| leg.account_id == *id),
            RefundFrom::ProRata if legs.len() == 1 => Some(0),
            RefundFrom::ProRata if principal.has_any_role(&ADMINISTRATORS) => None,
            RefundFrom::ProRata => {
                let owners = owners(p);
                return Err(if ownership::can_read(principal, &owners.iter().collect::<Vec<_>>()) {
                    AppError::forbidden("a refund from several payees needs the owner or admin role")
                } else {
                    AppError::NotFound("payment")
                });
            }
        };
        Ok(index.and_then(|i| legs.get(i).map(|leg| (leg.owner.clone(), i))).unwrap_or((Owner::Tenant, 0)))
    };
    // A refund debits the payees: a hot payee's shard 0 may need its shards' credits.
    let from = &from;
    with_sweep(app, request.who.tenant.as_str(), |sharded| async move {
        let decide = |p: &Payment, at: &str| p.refund(amount, from, at);
        let refund = (201, ownership::may_refund as Rule, &sharded);
        let result = transition(app, ctx, request, payment_id, refund, acting, decide).await;
        (result, sharded)
    })
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
    .filter(|(payment, _)| ownership::can_read(&who.principal, &owners(payment).iter().collect::<Vec<_>>()))
    .ok_or(AppError::NotFound("payment"))?;
    let mut view = payment_view(&payment);
    view["events"] = to_json(events)?;
    Ok(view)
}
