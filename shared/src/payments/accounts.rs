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
use crate::paging::PageQuery;
use crate::store::ledger::{self as ledger_store, AccountRecord};
use crate::store::tx::Tx;
use serde_json::{Value, json};

pub const DEFAULT_PAGE: u32 = 25;
pub const MAX_PAGE: u32 = 100;

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

/// An account's ledger entries, newest first; the cursor is the last entry's tx id.
pub async fn list_transactions(
    app: &App,
    who: &Authenticated,
    account_id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Value, AppError> {
    let page = PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let account = get_account(app, who, account_id).await?;
    let (entries, next) = ledger_store::list_entries(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &account.account_id,
        page.limit,
        page.after.as_deref(),
    )
    .await?;
    let items: Vec<EntryView> = entries.into_iter().map(EntryView::from).collect();
    Ok(json!({ "items": items, "next_cursor": next }))
}
