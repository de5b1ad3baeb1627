//! Account and payment services. Every POST is idempotent and costs at most
//! two DynamoDB round trips fresh (one consistent batch read of the
//! idempotency record with the items the operation needs, one transaction)
//! and exactly one on replay. The transaction carries the state change, the
//! ledger transaction and entries, both balance updates (overdraft rule as a
//! condition), the payment event, the completed idempotency record and the
//! outbox events: it all commits or none of it does.

use super::{Payment, PaymentStatus, Transition, TransitionError};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::idempotency::{self, Prior};
use crate::ledger::{Balances, Movement};
use crate::money::{amount_field, currency_field};
use crate::outbox::OutboxEvent;
use crate::store::idempotency::{IdempotencyRecord, RecordStatus};
use crate::store::ledger::{
    self as ledger_store, AccountRecord, EntryRecord, LedgerTransactionRecord, Posting,
};
use crate::store::payments::{self as payment_store, PaymentEventRecord};
use crate::store::tx::{Tx, TxError};
use crate::store::{self, Item};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_METADATA_KEYS: usize = 20;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;

/// The answer to an idempotent request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub body: Value,
    /// True when this is the stored answer to an earlier identical request.
    pub replayed: bool,
}

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
        let fingerprint = idempotency::fingerprint(operation, target, body);
        Self { who, operation, key, fingerprint }
    }
}

/// What an operation decided from the items it read.
struct Prepared {
    tx: Tx,
    status: u16,
    body: Value,
}

/// Reads the idempotency record with `keys`, lets `prepare` decide, commits
/// the decision together with the completed record. A concurrent duplicate
/// that wins the race is answered from the item the cancellation returns.
async fn execute(
    app: &App,
    request: &Idempotent<'_>,
    keys: Vec<Item>,
    prepare: impl FnOnce(Vec<Option<Item>>) -> Result<Prepared, AppError>,
    on_cancel: impl FnOnce(&TxError) -> Option<AppError>,
) -> Result<Outcome, AppError> {
    let table = &app.config.table_name;
    let tenant = request.who.tenant.as_str();
    let now = app.now();
    let (now_s, now_ms) = (now.unix_timestamp(), (now.unix_timestamp_nanos() / 1_000_000) as i64);
    let mut all_keys = vec![store::idempotency::record_key(tenant, request.operation, &request.key)];
    all_keys.extend(keys);
    let mut items = store::get_many(&app.clients.dynamodb, table, all_keys).await?;
    let record = items.remove(0).map(store::idempotency::decode).transpose()?;
    if let Prior::Replay(stored) = idempotency::prior(record.as_ref(), &request.fingerprint, now_s, now_ms)? {
        return Ok(Outcome { status: stored.status, body: stored.body, replayed: true });
    }
    let prepared = prepare(items)?;
    let record = IdempotencyRecord {
        tenant_id: tenant.to_owned(),
        operation: request.operation.to_owned(),
        idempotency_key: request.key.clone(),
        status: RecordStatus::Completed,
        fingerprint: request.fingerprint.clone(),
        response_status: prepared.status,
        response_body: prepared.body.to_string(),
        created_at: rfc3339(now),
        expires_at: now_s + app.config.idempotency_ttl_seconds,
        in_progress_until_ms: None,
    };
    let tx = prepared.tx.push(store::idempotency::complete(table, &record, now_s, now_ms)?);
    let error = match tx.commit(&app.clients.dynamodb).await {
        Ok(()) => return Ok(Outcome { status: prepared.status, body: prepared.body, replayed: false }),
        Err(error) => error,
    };
    if let Some(failure) = error.failed("idempotency") {
        let winner = failure.item.clone().map(store::idempotency::decode).transpose()?;
        return match (failure.code.as_str(), winner) {
            ("ConditionalCheckFailed", Some(winner)) => {
                match idempotency::prior(Some(&winner), &request.fingerprint, now_s, now_ms)? {
                    Prior::Replay(stored) => {
                        Ok(Outcome { status: stored.status, body: stored.body, replayed: true })
                    }
                    Prior::Fresh => Err(AppError::InProgress { retry_after_seconds: 1 }),
                }
            }
            // Another transaction on this key is executing right now.
            _ => Err(AppError::InProgress { retry_after_seconds: 1 }),
        };
    }
    Err(on_cancel(&error).unwrap_or_else(|| error.into_app_error()))
}

fn transition_error(error: TransitionError) -> AppError {
    match error {
        TransitionError::InvalidState(..) => AppError::Conflict(error.to_string()),
        TransitionError::Exceeds(_) => AppError::Unprocessable(error.to_string()),
    }
}

fn id_field(field: &str, value: &str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(value) {
        Ok(value.to_owned())
    } else {
        Err(AppError::bad_request(field, format!("{field}: must be an id returned by this API")))
    }
}

/// Ids in paths: a malformed one names nothing that exists.
fn path_id(value: &str, what: &'static str) -> Result<String, AppError> {
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

// ---------------------------------------------------------------- accounts

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    currency: String,
    #[serde(default)]
    allow_overdraft: bool,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub allow_overdraft: bool,
    pub balance: BalanceView,
    pub totals: Balances,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct BalanceView {
    /// credits_posted − debits_posted
    pub posted: i64,
    pub pending_debits: i64,
    pub pending_credits: i64,
    /// posted − pending_debits: what can be spent.
    pub available: i64,
}

impl From<&AccountRecord> for AccountView {
    fn from(account: &AccountRecord) -> Self {
        let b = &account.balances;
        AccountView {
            account_id: account.account_id.clone(),
            currency: account.currency.clone(),
            name: account.name.clone(),
            allow_overdraft: account.allow_overdraft,
            balance: BalanceView {
                posted: b.posted(),
                pending_debits: b.debits_pending,
                pending_credits: b.credits_pending,
                available: b.available,
            },
            totals: *b,
            created_at: account.created_at.clone(),
        }
    }
}

fn to_json(value: impl Serialize) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(|e| AppError::internal("encode response", e))
}

pub async fn create_account(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let input: NewAccount = crate::http::from_value(body)?;
    let currency = currency_field("currency", &input.currency)?;
    let name = bounded_text("name", input.name, MAX_NAME_CHARS)?;
    let table = &app.config.table_name;
    let tenant = &request.who.tenant;
    let now = app.now();
    let account = AccountRecord {
        tenant_id: tenant.to_string(),
        account_id: crate::ids::new_id(),
        currency: currency.code().to_owned(),
        name,
        allow_overdraft: input.allow_overdraft,
        balances: Balances::default(),
        created_at: rfc3339(now),
    };
    execute(
        app,
        request,
        Vec::new(),
        |_| {
            let event = OutboxEvent::new(
                tenant,
                "account",
                &account.account_id,
                "account.created",
                now,
                &ctx.correlation_id,
                json!({ "account_id": account.account_id, "currency": account.currency, "allow_overdraft": account.allow_overdraft }),
            )
            .by(&request.who.principal.actor());
            let tx = Tx::new(table, &event)?.push(ledger_store::insert_account(table, &account)?);
            Ok(Prepared { tx, status: 201, body: to_json(AccountView::from(&account))? })
        },
        |_| None,
    )
    .await
}

pub async fn get_account(app: &App, who: &Authenticated, account_id: &str) -> Result<AccountView, AppError> {
    let account_id = path_id(account_id, "account")?;
    let key = ledger_store::account_key(who.tenant.as_str(), &account_id);
    let item = store::get(&app.clients.dynamodb, &app.config.table_name, key).await?;
    let account = item.map(ledger_store::decode_account).transpose()?.ok_or(AppError::NotFound("account"))?;
    Ok(AccountView::from(&account))
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub tx_id: String,
    pub payment_id: String,
    pub movement: String,
    pub currency: String,
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub created_at: String,
}

pub const DEFAULT_PAGE: i32 = 25;
pub const MAX_PAGE: i32 = 100;

/// An account's ledger entries, newest first; the cursor is opaque to clients.
pub async fn list_transactions(
    app: &App,
    who: &Authenticated,
    account_id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Value, AppError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(raw) => raw.parse::<i32>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
            AppError::bad_request("limit", format!("limit: must be an integer from 1 to {MAX_PAGE}"))
        })?,
    };
    let bad_cursor = || AppError::bad_request("cursor", "cursor: is not a cursor returned by this API");
    let cursor = cursor
        .map(|raw| {
            let bytes = B64.decode(raw).map_err(|_| bad_cursor())?;
            let sk = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
            let valid = sk.strip_prefix("ENTRY#").is_some_and(crate::ids::is_valid_id);
            if valid { Ok(sk) } else { Err(bad_cursor()) }
        })
        .transpose()?;
    let account = get_account(app, who, account_id).await?;
    let (entries, next) = ledger_store::list_entries(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &account.account_id,
        limit,
        cursor.as_deref(),
    )
    .await?;
    let items: Vec<EntryView> = entries
        .into_iter()
        .map(|e| EntryView {
            tx_id: e.tx_id,
            payment_id: e.payment_id,
            movement: e.movement,
            currency: e.currency,
            debits_pending: e.delta.debits_pending,
            credits_pending: e.delta.credits_pending,
            debits_posted: e.delta.debits_posted,
            credits_posted: e.delta.credits_posted,
            created_at: e.created_at,
        })
        .collect();
    Ok(json!({ "items": items, "next_cursor": next.map(|sk| B64.encode(sk)) }))
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    amount: Value,
    currency: String,
    payer_account_id: String,
    payee_account_id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    #[serde(default)]
    amount: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

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

/// The JSON a payment is shown as.
pub fn payment_view(payment: &Payment) -> Value {
    json!({
        "payment_id": payment.payment_id,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "captured_amount": payment.captured_amount,
        "refunded_amount": payment.refunded_amount,
        "payer_account_id": payment.payer_account_id,
        "payee_account_id": payment.payee_account_id,
        "description": payment.description,
        "metadata": payment.metadata,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    })
}

/// Adds a transition's writes to `tx`: the ledger transaction, both entries,
/// both balance updates, the payment event, and the two outbox events.
#[allow(clippy::too_many_arguments)]
fn record_movement(
    table: &str,
    ctx: &RequestContext,
    who: &Authenticated,
    now: time::OffsetDateTime,
    payment: &Payment,
    movement: Movement,
    event_type: &str,
    amount: i64,
) -> Result<Tx, AppError> {
    let tenant = &who.tenant;
    let at = rfc3339(now);
    let tx_id = crate::ids::new_id();
    let (payer_delta, payee_delta) = movement.deltas();
    let postings = vec![
        Posting { account_id: payment.payer_account_id.clone(), delta: payer_delta },
        Posting { account_id: payment.payee_account_id.clone(), delta: payee_delta },
    ];
    let transaction = LedgerTransactionRecord {
        tenant_id: tenant.to_string(),
        tx_id: tx_id.clone(),
        payment_id: payment.payment_id.clone(),
        movement: movement.name().to_owned(),
        currency: payment.currency.clone(),
        postings: postings.clone(),
        created_at: at.clone(),
    };
    let payment_event = OutboxEvent::new(
        tenant,
        "payment",
        &payment.payment_id,
        event_type,
        now,
        &ctx.correlation_id,
        json!({
            "payment_id": payment.payment_id,
            "status": payment.status,
            "amount": amount,
            "currency": payment.currency,
            "authorized_amount": payment.amount,
            "captured_amount": payment.captured_amount,
            "refunded_amount": payment.refunded_amount,
            "payer_account_id": payment.payer_account_id,
            "payee_account_id": payment.payee_account_id,
            "ledger_tx_id": tx_id,
        }),
    )
    .by(&who.principal.actor());
    let ledger_event = OutboxEvent::new(
        tenant,
        "ledger_transaction",
        &tx_id,
        "ledger.transaction_recorded",
        now,
        &ctx.correlation_id,
        to_json(&transaction)?,
    )
    .by(&who.principal.actor());
    let history = PaymentEventRecord {
        tenant_id: tenant.to_string(),
        payment_id: payment.payment_id.clone(),
        seq: payment.version,
        event_type: event_type.to_owned(),
        status: payment.status.as_str().to_owned(),
        amount,
        actor: who.user_id.clone(),
        correlation_id: ctx.correlation_id.clone(),
        ledger_tx_id: tx_id.clone(),
        at: at.clone(),
    };
    let mut tx = Tx::new(table, &payment_event)?
        .event(&ledger_event)?
        .push(payment_store::insert_event(table, &history)?)
        .push(ledger_store::insert_transaction(table, &transaction)?);
    for (label, posting) in [("payer", &postings[0]), ("payee", &postings[1])] {
        tx = tx
            .push(ledger_store::insert_entry(
                table,
                &EntryRecord {
                    tenant_id: tenant.to_string(),
                    account_id: posting.account_id.clone(),
                    tx_id: tx_id.clone(),
                    payment_id: payment.payment_id.clone(),
                    movement: movement.name().to_owned(),
                    currency: payment.currency.clone(),
                    delta: posting.delta,
                    created_at: at.clone(),
                },
            )?)
            .push(ledger_store::apply_delta(
                table,
                label,
                tenant.as_str(),
                &posting.account_id,
                &payment.currency,
                &posting.delta,
            )?);
    }
    Ok(tx)
}

fn insufficient_funds(error: &TxError, account_label: &str) -> Option<AppError> {
    error.failed(account_label).filter(|f| f.code == "ConditionalCheckFailed").map(|_| {
        AppError::Unprocessable("insufficient funds: the payer's available balance is too low".into())
    })
}

pub async fn create_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let input: NewPayment = crate::http::from_value(body)?;
    let amount = amount_field("amount", &input.amount)?;
    let currency = currency_field("currency", &input.currency)?;
    let payer_id = id_field("payer_account_id", &input.payer_account_id)?;
    let payee_id = id_field("payee_account_id", &input.payee_account_id)?;
    if payer_id == payee_id {
        return Err(AppError::bad_request(
            "payee_account_id",
            "payee_account_id: must differ from payer_account_id",
        ));
    }
    let description = bounded_text("description", input.description, MAX_DESCRIPTION_CHARS)?;
    check_metadata(&input.metadata)?;
    let table = &app.config.table_name;
    let who = request.who;
    let tenant = who.tenant.as_str();
    let now = app.now();
    let keys =
        vec![ledger_store::account_key(tenant, &payer_id), ledger_store::account_key(tenant, &payee_id)];
    execute(
        app,
        request,
        keys,
        |items| {
            let mut accounts =
                items.into_iter().map(|item| item.map(ledger_store::decode_account).transpose());
            let payer = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payer account"))?;
            let payee = accounts.next().transpose()?.flatten().ok_or(AppError::NotFound("payee account"))?;
            if payer.currency != currency.code() || payee.currency != currency.code() {
                return Err(AppError::Unprocessable(format!(
                    "currency mismatch: payment in {}, payer account in {}, payee account in {}",
                    currency.code(),
                    payer.currency,
                    payee.currency
                )));
            }
            let at = rfc3339(now);
            let payment = Payment {
                payment_id: crate::ids::new_id(),
                tenant_id: tenant.to_owned(),
                amount,
                currency: currency.code().to_owned(),
                payer_account_id: payer_id.clone(),
                payee_account_id: payee_id.clone(),
                description,
                metadata: input.metadata,
                status: PaymentStatus::Authorized,
                captured_amount: 0,
                refunded_amount: 0,
                created_at: at.clone(),
                updated_at: at,
                version: 1,
            };
            let movement = Movement::Authorize { amount };
            let tx = record_movement(table, ctx, who, now, &payment, movement, "payment.authorized", amount)?
                .push(payment_store::insert(table, &payment)?);
            Ok(Prepared { tx, status: 201, body: payment_view(&payment) })
        },
        |error| insufficient_funds(error, "payer"),
    )
    .await
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
    let table = &app.config.table_name;
    let who = request.who;
    let now = app.now();
    let keys = vec![payment_store::payment_key(who.tenant.as_str(), &payment_id)];
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
            let change = decide(&current, &rfc3339(now)).map_err(transition_error)?;
            let tx = record_movement(
                table,
                ctx,
                who,
                now,
                &change.next,
                change.movement,
                change.event_type,
                change.amount,
            )?
            .push(payment_store::transition(table, &change.next)?);
            Ok(Prepared { tx, status, body: payment_view(&change.next) })
        },
        |error| {
            if error.failed("payment").is_some() {
                return Some(AppError::Conflict(
                    "the payment changed concurrently; fetch it and retry".into(),
                ));
            }
            // A refund debits the payee.
            insufficient_funds(error, "payee").map(|_| {
                AppError::Unprocessable("insufficient funds: the payee's available balance is too low".into())
            })
        },
    )
    .await
}

pub async fn capture_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let input: CaptureBody = crate::http::from_value(body)?;
    let amount = input.amount.as_ref().map(|a| amount_field("amount", a)).transpose()?;
    transition(app, ctx, request, payment_id, 200, |p, at| p.capture(amount, at)).await
}

pub async fn void_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let _: EmptyBody = crate::http::from_value(body)?;
    transition(app, ctx, request, payment_id, 200, |p, at| p.void(at)).await
}

pub async fn refund_payment(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    payment_id: &str,
    body: Value,
) -> Result<Outcome, AppError> {
    let input: RefundBody = crate::http::from_value(body)?;
    let amount = amount_field("amount", &input.amount)?;
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

// ---------------------------------------------------------------- HTTP entry

/// The idempotent POST commands of the payments API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    CreateAccount,
    CreatePayment,
    CapturePayment,
    VoidPayment,
    RefundPayment,
}

impl Command {
    /// The idempotency scope: keys are unique per tenant and operation.
    pub fn operation(&self) -> &'static str {
        match self {
            Command::CreateAccount => "create-account",
            Command::CreatePayment => "create-payment",
            Command::CapturePayment => "capture-payment",
            Command::VoidPayment => "void-payment",
            Command::RefundPayment => "refund-payment",
        }
    }
}

impl Outcome {
    pub fn into_reply(self) -> Result<crate::http::Reply, AppError> {
        let status =
            http::StatusCode::from_u16(self.status).map_err(|e| AppError::internal("stored status", e))?;
        let reply = crate::http::Reply::json(status, self.body)?;
        Ok(if self.replayed { reply.with_header(idempotency::REPLAYED_HEADER, "true") } else { reply })
    }
}

/// Runs one command from an API request: authenticate (the tenant comes from
/// the token, never the body), read the Idempotency-Key and the body, execute.
pub async fn handle(
    app: &App,
    ctx: &RequestContext,
    request: &lambda_http::Request,
    command: Command,
) -> Result<crate::http::Reply, AppError> {
    let who = crate::auth::authenticate(app, request).await?;
    let target = match command {
        Command::CreateAccount | Command::CreatePayment => String::new(),
        _ => crate::http::path_param(request, "id")?,
    };
    let key = idempotency::key_from(request)?;
    let body = match command {
        Command::CapturePayment | Command::VoidPayment => crate::http::optional_json_body(request)?,
        _ => crate::http::json_body(request)?,
    };
    let idempotent = Idempotent::new(&who, command.operation(), key, &target, &body);
    let outcome = match command {
        Command::CreateAccount => create_account(app, ctx, &idempotent, body).await?,
        Command::CreatePayment => create_payment(app, ctx, &idempotent, body).await?,
        Command::CapturePayment => capture_payment(app, ctx, &idempotent, &target, body).await?,
        Command::VoidPayment => void_payment(app, ctx, &idempotent, &target, body).await?,
        Command::RefundPayment => refund_payment(app, ctx, &idempotent, &target, body).await?,
    };
    outcome.into_reply()
}
