//! Ledger accounts: creation (idempotent), balances, the entries page, and
//! the operator's change of an overdraft limit.
//!
//! A new account belongs to its creator; an overdraft (always with a limit)
//! or another owner needs the owner or admin role, re-checked on the
//! caller's directory entry in the creating transaction, which also checks
//! that a named user or client is in the tenant's directory. Reads answer
//! 404 unless the caller owns the account or is an owner, admin or auditor.

use super::input::{self, path_id};
use super::movement::Scope;
use super::ownership::{self, Grant, Owner};
use super::views::{AccountView, EntryView, to_json};
use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::{ADMINISTRATORS, Actor, Principal};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::idempotency::{Idempotent, Outcome, Prepared, execute};
use crate::ledger::{AccountStatus, Balances};
use crate::outbox::OutboxEvent;
use crate::paging::PageQuery;
use crate::store::labels::PaymentLabel;
use crate::store::ledger::{self as ledger_store, AccountChange, AccountRecord, ChangeRefused};
use crate::store::members;
use crate::store::tx::{Tx, TxError};
use crate::tenant::TenantId;
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
    let (owner, grant) =
        ownership::account_owner(&request.who.principal, input.owner, input.allow_overdraft)?;
    let tenant = &request.who.tenant;
    let now = app.now();
    let account = AccountRecord {
        tenant_id: tenant.to_string(),
        account_id: crate::ids::new_id(),
        currency: input.currency.code().to_owned(),
        name: input.name,
        allow_overdraft: input.allow_overdraft,
        owner,
        stored_overdraft_limit: Some(input.overdraft_limit),
        balances: Balances::default(),
        spendable: None,
        status: Default::default(),
        created_at: rfc3339(now),
        shards: input.shards,
    };
    let scope = Scope::of(&app.config.table_name, ctx, request.who, now);
    execute(
        app,
        request,
        Vec::new(),
        |_| creation(&scope, &request.who.principal, &account, grant),
        creation_refused,
    )
    .await
}

/// The account's creation: its item, its event, the named owner's directory
/// entry (unless it is the caller's), and the caller's role when `grant` needs it.
fn creation(
    scope: &Scope<'_>,
    principal: &Principal,
    account: &AccountRecord,
    grant: Option<Grant>,
) -> Result<Prepared, AppError> {
    let table = scope.table;
    let mut payload = json!({
        "account_id": account.account_id,
        "currency": account.currency,
        "allow_overdraft": account.allow_overdraft,
        "overdraft_limit": account.overdraft_limit(),
        "owner": account.owner.view(),
    });
    if account.shards > 1 {
        payload["shards"] = json!(account.shards);
    }
    let event = OutboxEvent::new(
        scope.tenant,
        "account",
        &account.account_id,
        "account.created",
        scope.now,
        scope.correlation_id,
        payload,
    )
    .by(&principal.actor());
    let mut tx = Tx::new(table, &event)?.push(ledger_store::insert_account(table, account)?);
    for shard in ledger_store::insert_shards(table, account)? {
        tx = tx.push(shard);
    }
    // The caller's own entry is checked by the role check when it applies.
    let named = if account.owner == Owner::of(principal) {
        None
    } else {
        members::require_listed(table, PaymentLabel::Owner, &account.tenant_id, &account.owner)?
    };
    if let Some(check) = named {
        tx = tx.push(check);
    }
    if grant == Some(Grant::Role) {
        tx = tx.push(members::require_role_as(table, PaymentLabel::Caller, principal, &ADMINISTRATORS)?);
    }
    Ok(Prepared { tx, status: 201, body: to_json(AccountView::try_from(account)?)? })
}

/// A role no longer held, or an owner that is not in the tenant's directory.
fn creation_refused(error: &TxError<PaymentLabel>) -> Option<AppError> {
    if error.failed(PaymentLabel::Caller).is_some() {
        return Some(AppError::forbidden("your current role does not allow this account"));
    }
    error
        .failed(PaymentLabel::Owner)
        .map(|_| AppError::Unprocessable("owner: there is no such user or client in this tenant".into()))
}

/// The account, if the caller may see it (404 otherwise: its existence is
/// not revealed), its totals summed over its balance shards: one strongly
/// consistent query of the account item and its shards.
pub async fn get_account(app: &App, who: &Authenticated, account_id: &str) -> Result<AccountView, AppError> {
    let account_id = path_id(account_id, "account")?;
    let table = &app.config.table_name;
    let account = ledger_store::read_account(&app.clients.dynamodb, table, who.tenant.as_str(), &account_id)
        .await?
        .filter(|read| ownership::can_read(&who.principal, &[&read.account.owner]))
        .ok_or(AppError::NotFound("account"))?;
    AccountView::try_from(&account.summed()?)
}

/// Moves a hot account's posted credits from its credit shards into shard 0
/// (one query, then one transaction; no balance of the account changes, so
/// it writes no event). `false`: there was nothing to move. Its conditions
/// hold while no sweep runs beside it; a concurrent one makes it a no-op.
pub async fn sweep_shards(app: &App, tenant: &str, account_id: &str) -> Result<bool, AppError> {
    let table = &app.config.table_name;
    let Some(account) = ledger_store::read_account(&app.clients.dynamodb, table, tenant, account_id).await?
    else {
        return Ok(false);
    };
    let actions = ledger_store::sweep(table, &account)?;
    if actions.is_empty() {
        return Ok(false);
    }
    let tx = actions.into_iter().fold(Tx::without_event(table), Tx::push);
    match tx.commit(&app.clients.dynamodb).await {
        Ok(()) => Ok(true),
        // A concurrent sweep moved them first: shard 0 has them.
        Err(TxError::Cancelled(_)) => Ok(true),
        Err(TxError::Other(error)) => Err(error),
    }
}

/// A change of an account (`event` describes it; `caller`: the role check of
/// the caller's request, if any) in one transaction. A hot account refuses
/// the single-item form; then its shards are swept (closing needs every
/// total in shard 0; a new limit is checked against the whole balance),
/// read, and changed with it.
async fn commit_change(
    app: &App,
    tenant: &TenantId,
    account_id: &str,
    change: &AccountChange,
    (event, caller): (&OutboxEvent, Option<&Principal>),
) -> Result<(), AppError> {
    let table = &app.config.table_name;
    let dynamodb = &app.clients.dynamodb;
    let attempt = |sharded: Option<&ledger_store::ShardedAccount>| -> Result<Tx<PaymentLabel>, AppError> {
        let mut tx = Tx::new(table, event)?;
        for action in ledger_store::change_account(table, tenant.as_str(), account_id, change, sharded)? {
            tx = tx.push(action);
        }
        if let Some(principal) = caller {
            tx = tx.push(members::require_role_as(table, PaymentLabel::Caller, principal, &ADMINISTRATORS)?);
        }
        Ok(tx)
    };
    match attempt(None)?.commit(dynamodb).await {
        Ok(()) => return Ok(()),
        Err(error) => match change_refused(error, change, false) {
            ChangeOutcome::Sharded => {}
            ChangeOutcome::Refused(error) => return Err(error),
        },
    }
    if change.status == Some(AccountStatus::Closed) || change.overdraft_limit.is_some() {
        sweep_shards(app, tenant.as_str(), account_id).await?;
    }
    let account = ledger_store::read_account(dynamodb, table, tenant.as_str(), account_id)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    attempt(Some(&account))?.commit(dynamodb).await.map_err(|error| {
        match change_refused(error, change, true) {
            ChangeOutcome::Refused(error) => error,
            ChangeOutcome::Sharded => {
                AppError::Internal("a sharded account change refused as unsharded".into())
            }
        }
    })
}

/// The operator (`tenants` job) sets an overdraft account's limit, e.g. to
/// replace the default the migration gave a legacy account: one transaction
/// with its event; `spendable` follows from the balance at that moment, and
/// the limit is never below the account's current overdraft.
pub async fn set_overdraft_limit(
    app: &App,
    correlation_id: &str,
    tenant: &TenantId,
    account_id: &str,
    limit: &Value,
) -> Result<Value, AppError> {
    let account_id = path_id(account_id, "account")?;
    let limit = input::overdraft_limit(true, Some(limit))?;
    let payload = json!({ "account_id": account_id, "overdraft_limit": limit });
    let event = OutboxEvent::new(
        tenant,
        "account",
        &account_id,
        "account.overdraft_limit_changed",
        app.now(),
        correlation_id,
        payload.clone(),
    )
    .by(&Actor::operator());
    let change = AccountChange { status: None, overdraft_limit: Some(limit) };
    commit_change(app, tenant, &account_id, &change, (&event, None)).await?;
    Ok(payload)
}

/// `PATCH /v1/accounts/{id}`: an owner or admin freezes, reactivates or
/// closes an account or changes its overdraft limit. One transaction: the
/// account's update (its rules are the condition, see
/// [`ledger_store::change_account`]), the caller's role re-checked on their
/// directory entry, the `account.updated` event. The answer is the account
/// as read right after (strongly consistent).
pub async fn update_account(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    account_id: &str,
    body: Value,
) -> Result<AccountView, AppError> {
    if !who.principal.has_any_role(&ADMINISTRATORS) {
        return Err(AppError::forbidden("only owners and admins may change an account"));
    }
    let account_id = path_id(account_id, "account")?;
    let change = input::account_change(body)?;
    let mut payload = json!({ "account_id": account_id });
    if let Some(status) = change.status {
        payload["status"] = json!(status);
    }
    if let Some(limit) = change.overdraft_limit {
        payload["overdraft_limit"] = json!(limit);
    }
    let event = OutboxEvent::new(
        &who.tenant,
        "account",
        &account_id,
        "account.updated",
        app.now(),
        &ctx.correlation_id,
        payload,
    )
    .by(&who.principal.actor());
    commit_change(app, &who.tenant, &account_id, &change, (&event, Some(&who.principal))).await?;
    get_account(app, who, &account_id).await
}

enum ChangeOutcome {
    /// A hot account: change it with its shards.
    Sharded,
    Refused(AppError),
}

/// The answer to a refused account change, from the account as it was
/// (`with_shards`: the change named the account's shards).
fn change_refused(error: TxError<PaymentLabel>, change: &AccountChange, with_shards: bool) -> ChangeOutcome {
    if error.failed(PaymentLabel::Caller).is_some() {
        return ChangeOutcome::Refused(AppError::forbidden(
            "your current role does not allow changing accounts",
        ));
    }
    if error.condition_failed(PaymentLabel::Shard).is_some() && error.failed(PaymentLabel::Account).is_none()
    {
        // Only a closing puts a condition on a shard: it still holds credits.
        return ChangeOutcome::Refused(AppError::Conflict(NOT_SETTLED.into()));
    }
    let Some(failure) = error.condition_failed(PaymentLabel::Account) else {
        return ChangeOutcome::Refused(error.into_app_error());
    };
    ChangeOutcome::Refused(match ledger_store::refusal(failure.item.as_ref(), change, with_shards) {
        Ok(ChangeRefused::Sharded) => return ChangeOutcome::Sharded,
        Ok(ChangeRefused::Missing) => AppError::NotFound("account"),
        Ok(ChangeRefused::Closed) => AppError::Conflict("the account is closed".into()),
        Ok(ChangeRefused::NotSettled) => AppError::Conflict(NOT_SETTLED.into()),
        Ok(ChangeRefused::NoOverdraft) => AppError::Conflict("the account does not allow overdraft".into()),
        Ok(ChangeRefused::BelowOverdraft(overdraft)) => AppError::Conflict(format!(
            "overdraft_limit: may not be below the account's current overdraft ({overdraft} minor units)"
        )),
        Err(error) => error,
    })
}

const NOT_SETTLED: &str = "an account can be closed only at a zero balance with no pending holds";

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
