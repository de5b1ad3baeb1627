//! `GET /v1/users/{id}/export`: everything held about a person, as JSON
//! (GDPR art. 15 and 20), for the person themselves or an owner or admin of
//! their tenant: the profile with the email opened, their sessions, their
//! second factor's status (never its secret or recovery codes), their
//! consent history, the accounts they own with every entry, the payments
//! those accounts are party to with their events, and the audit entries
//! about them (their id as the subject or anywhere in the payload).
//! An erased person has nothing left to export: 404.

use crate::app::App;
use crate::auth::Authenticated;
use crate::error::AppError;
use crate::payments::ownership::Owner;
use crate::store::{audit, consents, ledger, members, payments, sessions, users};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The sessions, consents and audit entries read per page.
const PAGE: i32 = 100;

pub async fn export(app: &App, who: &Authenticated, user_id: &str) -> Result<Value, AppError> {
    let caller = &who.principal;
    let own = super::person_or_administrator(caller, user_id)?;
    let (dynamodb, table, tenant) = (&app.clients.dynamodb, &app.config.table_name, caller.tenant.as_str());
    let member = members::find(dynamodb, table, tenant, user_id).await?.ok_or(AppError::NotFound("user"))?;
    let user = users::find_for_member(dynamodb, table, &member).await?.ok_or(AppError::NotFound("user"))?;
    let email = super::personal::shown(
        app,
        tenant,
        user_id,
        super::personal::EMAIL,
        user.email.as_deref(),
        user.email_sealed.as_deref(),
    )
    .await?;
    let mfa = user.mfa.as_ref().map(|m| {
        json!({ "status": m.status, "enrolled_at": m.created_at, "activated_at": m.activated_at,
                "recovery_codes_left": m.recovery_left() })
    });
    let sessions = sessions::list_for_user(dynamodb, table, tenant, user_id, PAGE).await?;
    let consents = consent_history(app, tenant, user_id).await?;
    let (accounts, payment_ids) = owned_accounts(app, tenant, user_id).await?;
    let mut payments = Vec::new();
    for payment_id in payment_ids {
        if let Some((payment, events)) =
            payments::payment_with_events(dynamodb, table, tenant, &payment_id).await?
        {
            payments.push(json!({ "payment": payment, "events": events }));
        }
    }
    let audit_entries = audit_about(app, tenant, user_id).await?;
    tracing::info!(tenant = %tenant, user_id = %user_id, by_self = own, "personal data exported");
    Ok(json!({
        "format": "caas-personal-data-v1",
        "exported_at": crate::clock::rfc3339(app.now()),
        "profile": {
            "user_id": user.user_id,
            "tenant_id": user.tenant_id,
            "email": email,
            "role": user.role,
            "status": user.status,
            "created_at": user.created_at,
            "last_login_at": user.last_login_at,
            "devices": user.devices.as_ref().map_or(0, |d| d.len()),
        },
        "mfa": mfa,
        "sessions": sessions,
        "consents": consents,
        "accounts": accounts,
        "payments": payments,
        "audit_entries": audit_entries,
    }))
}

async fn consent_history(app: &App, tenant: &str, user_id: &str) -> Result<Vec<Value>, AppError> {
    let (dynamodb, table) = (&app.clients.dynamodb, &app.config.table_name);
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = consents::page(dynamodb, table, tenant, user_id, PAGE, before.as_deref()).await?;
        all.extend(page.into_iter().map(|c| json!(c)));
        match next {
            Some(next) => before = Some(next),
            None => return Ok(all),
        }
    }
}

/// The accounts `user_id` owns, each with its entries, and the payments
/// those entries belong to.
async fn owned_accounts(
    app: &App,
    tenant: &str,
    user_id: &str,
) -> Result<(Vec<Value>, BTreeSet<String>), AppError> {
    let (dynamodb, table) = (&app.clients.dynamodb, &app.config.table_name);
    let owner = Owner::User(user_id.to_owned());
    let mut accounts = Vec::new();
    let mut payment_ids = BTreeSet::new();
    for account_id in ledger::tenant_account_ids(dynamodb, table, tenant).await? {
        let ledger::AccountHistory { account, shards, entries, .. } =
            ledger::account_with_entries(dynamodb, table, tenant, &account_id).await?;
        let Some(ledger::StoredAccount::Valid(account)) = account else { continue };
        if account.owner != owner {
            continue;
        }
        // A hot account's item holds shard 0 only: the person sees the whole balance.
        let account = ledger::ShardedAccount { account, shards }.summed()?;
        payment_ids.extend(entries.iter().map(|e| e.payment_id.clone()));
        accounts.push(json!({ "account": account, "entries": entries }));
    }
    Ok((accounts, payment_ids))
}

/// The audit entries whose subject is `user_id` or whose payload names it.
async fn audit_about(app: &App, tenant: &str, user_id: &str) -> Result<Vec<Value>, AppError> {
    let (dynamodb, table) = (&app.clients.dynamodb, &app.config.table_name);
    let mut about = Vec::new();
    let mut after = 0;
    loop {
        let (entries, more) = audit::entries_after(dynamodb, table, tenant, after, PAGE).await?;
        for entry in entries.iter().flatten() {
            after = after.max(entry.seq);
            if entry.aggregate_id == user_id || names(&entry.payload, user_id) {
                about.push(json!(entry));
            }
        }
        if let Some(last) = entries.iter().filter_map(|e| e.as_ref().err()).max() {
            after = after.max(*last);
        }
        if !more || entries.is_empty() {
            return Ok(about);
        }
    }
}

fn names(value: &Value, id: &str) -> bool {
    match value {
        Value::String(text) => text == id,
        Value::Array(items) => items.iter().any(|v| names(v, id)),
        Value::Object(map) => map.values().any(|v| names(v, id)),
        _ => false,
    }
}
