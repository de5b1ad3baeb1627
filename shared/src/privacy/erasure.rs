//! Erasure (`DELETE /v1/users/{id}`) by crypto-shredding, and its
//! re-application to every restored copy of the table.
//!
//! An erasure is one transaction: the user's key item deleted (every sealed
//! copy of their personal data, in items, outbox and audit payloads or
//! backups, can no longer be opened), their user item deleted (login finds
//! no one: the same 401 as an unknown email), their directory entry deleted
//! (no refresh token of theirs refreshes: a refresh checks the entry; no
//! id-addressed operation finds them), their sessions' records, their entry in the erasure list (its
//! own table: subject id and date only) and the `user.erased` event. Ledger
//! entries, accounts and payments stay, tied to the pseudonymous user id.
//!
//! Who: the user themselves, re-authenticated by their password (checked
//! against the hash the delete is conditional on), or an owner or admin of
//! the tenant (an admin not an owner's), the caller's role a condition of the
//! same transaction. An owner's erasure lowers the owner count under the
//! condition that another active owner remains.
//!
//! A restore brings the key items back: [`reapply`] deletes them (and the
//! user items and directory entries) again on the restored copy and proves,
//! per erased person, that no key is left to open their data.

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::credentials::check_password_size;
use crate::auth::password::{self, Verdict};
use crate::auth::principal::{ADMINISTRATORS, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::ratelimit::{self, Counter};
use crate::store::erasures::{self, ErasureRecord};
use crate::store::labels::AuthLabel;
use crate::store::tx::Tx;
use crate::store::{members, sessions, tenants, user_keys, users};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The body of `DELETE /v1/users/{id}`: the password when erasing oneself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    #[serde(default)]
    pub password: Option<String>,
}

const WRONG_PASSWORD: &str = "the password is not right";
/// The sessions deleted with the user (the newest; the transaction's other
/// writes take at most 10 of its 100 actions). Older ones cannot refresh
/// either: a refresh checks the directory entry, which is deleted.
const MAX_SESSIONS: i32 = 80;
const LAST_OWNER: &str = "the tenant's last owner cannot be erased";
const CHANGED: &str = "the user changed meanwhile; retry";

/// Erases `user_id` of the caller's tenant.
pub async fn erase(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    user_id: &str,
    request: ErasureRequest,
) -> Result<(), AppError> {
    let caller = &who.principal;
    let own = super::person_or_administrator(caller, user_id)?;
    let password = match (own, request.password) {
        (true, Some(password)) => {
            check_password_size(&password).map_err(|_| {
                AppError::bad_request("password", "password: is required, at most 1024 bytes")
            })?;
            Some(password)
        }
        (true, None) => {
            return Err(AppError::bad_request("password", "password: is required to erase your own account"));
        }
        (false, _) => None,
    };
    let (dynamodb, table, tenant) = (&app.clients.dynamodb, &app.config.table_name, caller.tenant.as_str());
    let erasures_table = app.config.erasures_table()?;
    if password.is_some() {
        // Limited like untrusted logins, before any hashing.
        let limit = app.config.rate_limits.login_ip;
        ratelimit::consume(app, &Counter::per_principal("erase_user", caller, limit, app.now())).await?;
    }
    let member = members::find(dynamodb, table, tenant, user_id).await?.ok_or(AppError::NotFound("user"))?;
    if !own && member.role == Role::Owner && !caller.is_owner() {
        return Err(AppError::forbidden("an admin cannot erase an owner"));
    }
    let user = users::find_for_member(dynamodb, table, &member).await?.ok_or(AppError::NotFound("user"))?;
    let sessions = sessions::list_for_user(dynamodb, table, tenant, user_id, MAX_SESSIONS).await?;
    if let Some(password) = password {
        let (cost, stored) = (app.config.argon2, user.password_hash.clone());
        let verdict =
            crate::auth::service::blocking(move || password::verify(cost, &password, &stored)).await?;
        if !matches!(verdict, Verdict::Match { .. }) {
            tracing::info!(tenant = %tenant, user_id = %user_id, "erasure refused: wrong password");
            return Err(AppError::forbidden(WRONG_PASSWORD));
        }
    }

    let now = app.now();
    let record =
        ErasureRecord { tenant_id: tenant.to_owned(), user_id: user_id.to_owned(), erased_at: rfc3339(now) };
    let event = OutboxEvent::new(
        &caller.tenant,
        "user",
        user_id,
        "user.erased",
        now,
        &ctx.correlation_id,
        json!({ "user_id": user_id, "erased_at": record.erased_at, "self": own }),
    )
    .by(&caller.actor());
    let counts_as_owner = member.role == Role::Owner && member.status == users::UserStatus::Active;
    let tenant_action = if counts_as_owner {
        tenants::change_owner_count(table, tenant, -1)?
    } else {
        tenants::require_active(table, tenant)?
    };
    let limit = Counter::for_write(app, "erase_user", caller);
    let mut tx = Tx::new(table, &event)?
        .push(users::erase(table, &user, !own && !caller.is_owner())?)
        .push(members::erase(table, &member)?)
        .push(user_keys::delete(table, tenant, user_id)?)
        .push(erasures::insert(erasures_table, &record)?)
        .push(tenant_action)
        .push(ratelimit::action(table, AuthLabel::RateLimit, &limit)?);
    if !own {
        let required: &[Role] = if member.role == Role::Owner { &[Role::Owner] } else { &ADMINISTRATORS };
        tx = tx.push(members::require_role(table, caller, required)?);
    }
    for session in &sessions {
        tx = tx.push(sessions::erase_session(table, tenant, &session.family_id)?);
    }
    tx.commit(dynamodb).await.map_err(|error| {
        if let Some(limited) = ratelimit::refused(&error, AuthLabel::RateLimit, &limit, now) {
            limited
        } else if error.failed(AuthLabel::Caller).is_some() {
            AppError::forbidden("your current role does not allow this erasure")
        } else if let Some(failure) = error.failed(AuthLabel::Tenant) {
            if counts_as_owner && failure.item.as_ref().is_none_or(is_active_tenant) {
                AppError::Conflict(LAST_OWNER.into())
            } else {
                crate::auth::service::tenant_refusal(failure)
            }
        } else if error.failed(AuthLabel::User).is_some() || error.failed(AuthLabel::Member).is_some() {
            AppError::Conflict(CHANGED.into())
        } else {
            error.into_app_error()
        }
    })?;
    tracing::info!(tenant = %tenant, user_id = %user_id, by_self = own, "user erased");
    Ok(())
}

fn is_active_tenant(item: &crate::store::Item) -> bool {
    tenants::decode_item(item.clone()).is_ok_and(|t| t.status == tenants::TenantStatus::Active)
}

/// What re-applying the erasure list did to a restored copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reapplied {
    /// Erasures on the list (every tenant).
    pub erasures: usize,
    /// Erasures the restored copy still held data of (its key, user item or
    /// directory entry), now deleted again.
    pub reapplied: usize,
    /// Erased people with no key left on the restored copy: their sealed
    /// data there cannot be opened. Equal to `erasures` when it worked.
    pub undecryptable: usize,
}

impl Reapplied {
    pub fn ok(&self) -> bool {
        self.undecryptable == self.erasures
    }
}

/// Re-applies every erasure of the list to `restored` (a restored copy of
/// the table), then checks each erased person's key is gone there.
pub async fn reapply(app: &App, restored: &str) -> Result<Reapplied, AppError> {
    use futures::StreamExt;
    let dynamodb = &app.clients.dynamodb;
    let list = erasures::all(dynamodb, app.config.erasures_table()?).await?;
    let results: Vec<Result<(bool, bool), AppError>> = futures::stream::iter(&list)
        .map(|erasure| async move {
            let removed = erasures::reapply_one(dynamodb, restored, erasure).await?;
            let key = user_keys::find(dynamodb, restored, &erasure.tenant_id, &erasure.user_id).await?;
            Ok((removed, key.is_none()))
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut report = Reapplied { erasures: list.len(), ..Reapplied::default() };
    for result in results {
        let (removed, undecryptable) = result?;
        report.reapplied += usize::from(removed);
        report.undecryptable += usize::from(undecryptable);
    }
    tracing::info!(restored, erasures = report.erasures, reapplied = report.reapplied, "erasures re-applied");
    Ok(report)
}
