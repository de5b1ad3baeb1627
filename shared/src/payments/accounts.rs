//! Ledger accounts: creation (idempotent), balances, and the entries page.

use super::input::{self, path_id};
use super::views::{AccountView, EntryView, to_json};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::idempotency::{Idempotent, Outcome, Prepared, execute};
use crate::ledger::Balances;
use crate::outbox::OutboxEvent;
use crate::store::ledger::{self as ledger_store, AccountRecord};
use crate::store::tx::Tx;
use serde_json::{Value, json};

pub const DEFAULT_PAGE: i32 = 25;
pub const MAX_PAGE: i32 = 100;

pub async fn create_account(
    app: &App,
    ctx: &RequestContext,
    request: &Idempotent<'_>,
    body: Value,
) -> Result<Outcome, AppError> {
    let input = input::new_account(body)?;
    let table = &app.config.table_name;
    let tenant = &request.who.tenant;
    let now = app.now();
    let account = AccountRecord {
        tenant_id: tenant.to_string(),
        account_id: crate::ids::new_id(),
        currency: input.currency.code().to_owned(),
        name: input.name,
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
            Ok(Prepared { tx, status: 201, body: to_json(AccountView::try_from(&account)?)? })
        },
        |_| None,
    )
    .await
}

pub async fn get_account(app: &App, who: &Authenticated, account_id: &str) -> Result<AccountView, AppError> {
    let account_id = path_id(account_id, "account")?;
    let key = ledger_store::account_key(who.tenant.as_str(), &account_id);
    let item = crate::store::get(&app.clients.dynamodb, &app.config.table_name, key).await?;
    let account = item.map(ledger_store::decode_account).transpose()?.ok_or(AppError::NotFound("account"))?;
    AccountView::try_from(&account)
}

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
            if ledger_store::is_entry_sort_key(&sk) { Ok(sk) } else { Err(bad_cursor()) }
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
    let items: Vec<EntryView> = entries.into_iter().map(EntryView::from).collect();
    Ok(json!({ "items": items, "next_cursor": next.map(|sk| B64.encode(sk)) }))
}
