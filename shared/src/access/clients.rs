//! A tenant's machine clients (its own backends calling this API), managed
//! by its owners and admins: `POST /v1/clients` `{name, roles}` creates one
//! and answers its id and secret, the secret once; `POST
//! /v1/clients/{id}/secret` rotates the secret (the previous one keeps
//! working for `CLIENT_SECRET_GRACE_SECONDS`, 24 hours by default, so a
//! deployment can roll over); `DELETE /v1/clients/{id}` revokes the client.
//! Clients get access tokens at the OAuth token endpoint
//! ([`crate::auth::oauth`]).
//!
//! A client holds admin, member and/or auditor, never owner: owners are the
//! people accountable for a tenant. Each change is one transaction: the
//! client's entry, the tenant still active, the caller still an owner or
//! admin on its own directory entry, and the event naming the caller.

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::client_secret;
use crate::auth::principal::{ADMINISTRATORS, Principal, PrincipalKind, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::store::clients::{self, ClientRecord, ClientStatus, Target};
use crate::store::labels::AuthLabel;
use crate::store::tx::{Tx, TxError};
use crate::store::{Action, members, tenants};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The roles a machine client may hold.
pub const CLIENT_ROLES: [Role; 3] = [Role::Admin, Role::Member, Role::Auditor];

/// `POST /v1/clients`. Roles are strings, checked here, so an invalid one
/// is named without being echoed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub name: String,
    pub roles: Vec<String>,
}

/// A new client. The secret is shown once, here, and stored only as a hash.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedClient {
    pub client_id: String,
    pub client_secret: String,
    pub tenant_id: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: String,
}

/// A rotated secret, shown once; the previous one works until `previous_secret_expires_at`.
#[derive(Debug, Clone, Serialize)]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_expires_at: String,
}

fn client_roles(raw: &[String]) -> Result<Vec<Role>, AppError> {
    let invalid =
        || AppError::bad_request("roles", "roles: one or more of admin, member and auditor (never owner)");
    let mut roles = raw
        .iter()
        .map(|name| Role::parse(name).filter(|role| CLIENT_ROLES.contains(role)).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    if roles.is_empty() { Err(invalid()) } else { Ok(roles) }
}

fn client_event(
    ctx: &RequestContext,
    caller: &Principal,
    client_id: &str,
    event_type: &str,
    now: OffsetDateTime,
    payload: Value,
) -> OutboxEvent {
    OutboxEvent::new(&caller.tenant, "client", client_id, event_type, now, &ctx.correlation_id, payload)
        .by(&caller.actor())
}

/// `POST /v1/clients`: one transaction (the client's entry, the tenant
/// active, the caller's role).
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    request: ClientRequest,
) -> Result<IssuedClient, AppError> {
    let caller = &who.principal;
    caller.require_any(&ADMINISTRATORS)?;
    let name = super::display_name("name", &request.name)?;
    let roles = client_roles(&request.roles)?;
    let now = app.now();
    let (client_secret, secret_hash) = client_secret::generate(&caller.tenant);
    let record = ClientRecord {
        tenant_id: caller.tenant.to_string(),
        client_id: crate::ids::new_id(),
        name,
        roles,
        status: ClientStatus::Active,
        secret_hash: Some(secret_hash),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        created_at: rfc3339(now),
        created_by: caller.actor(),
        updated_at: None,
        revoked_at: None,
    };
    let payload = json!({ "client_id": record.client_id, "name": record.name, "roles": record.roles });
    let event = client_event(ctx, caller, &record.client_id, "client.created", now, payload);
    commit(app, caller, &event, clients::insert(&app.config.table_name, &record)?, None).await?;
    tracing::info!(tenant = %caller.tenant, client_id = %record.client_id, roles = ?record.roles, "client created");
    Ok(IssuedClient {
        client_id: record.client_id,
        client_secret,
        tenant_id: record.tenant_id,
        name: record.name,
        roles: record.roles,
        created_at: record.created_at,
    })
}

/// `POST /v1/clients/{id}/secret`: one transaction, no read (the update
/// moves the stored hash to "previous" itself).
pub async fn rotate_secret(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    client_id: &str,
) -> Result<RotatedSecret, AppError> {
    let (caller, target) = target_of(who, client_id)?;
    let now = app.now();
    let until = now + time::Duration::seconds(app.config.client_secret_grace_seconds);
    let (client_secret, secret_hash) = client_secret::generate(&caller.tenant);
    let table = &app.config.table_name;
    let action = clients::rotate_secret(table, &target, &secret_hash, until.unix_timestamp(), &rfc3339(now))?;
    let payload = json!({ "client_id": client_id, "previous_secret_expires_at": rfc3339(until) });
    let event = client_event(ctx, caller, client_id, "client.secret_rotated", now, payload);
    commit(app, caller, &event, action, Some(&target)).await?;
    tracing::info!(tenant = %caller.tenant, client_id = %client_id, "client secret rotated");
    Ok(RotatedSecret {
        client_id: client_id.to_owned(),
        client_secret,
        previous_secret_expires_at: rfc3339(until),
    })
}

/// `DELETE /v1/clients/{id}`: one transaction. Its secrets stop working at
/// once; access tokens already issued run out within their lifetime.
pub async fn revoke(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    client_id: &str,
) -> Result<(), AppError> {
    let (caller, target) = target_of(who, client_id)?;
    let now = app.now();
    let action = clients::revoke(&app.config.table_name, &target, &rfc3339(now))?;
    let event =
        client_event(ctx, caller, client_id, "client.revoked", now, json!({ "client_id": client_id }));
    commit(app, caller, &event, action, Some(&target)).await?;
    tracing::info!(tenant = %caller.tenant, client_id = %client_id, "client revoked");
    Ok(())
}

/// The caller of a change of `client_id`, allowed by its token, and the
/// entry the change applies to (an id that cannot be a client's is not
/// found). A client changing itself has its role checked on that entry.
fn target_of<'a>(
    who: &'a Authenticated,
    client_id: &'a str,
) -> Result<(&'a Principal, Target<'a>), AppError> {
    let caller = &who.principal;
    caller.require_any(&ADMINISTRATORS)?;
    if !crate::ids::is_valid_id(client_id) {
        return Err(AppError::NotFound("client"));
    }
    let on_itself = caller.kind == PrincipalKind::Client && caller.id == client_id;
    let caller_roles = on_itself.then_some(&ADMINISTRATORS[..]);
    Ok((caller, Target { tenant: caller.tenant.as_str(), client_id, caller_roles }))
}

/// Commits `action` on a client's entry with its event, the tenant active
/// and (unless the client acts on itself) the caller's role. `target`:
/// the changed entry, if any (none when creating).
async fn commit(
    app: &App,
    caller: &Principal,
    event: &OutboxEvent,
    action: Action<AuthLabel>,
    target: Option<&Target<'_>>,
) -> Result<(), AppError> {
    let on_itself = target.is_some_and(|t| t.caller_roles.is_some());
    let table = &app.config.table_name;
    let mut tx =
        Tx::new(table, event)?.push(action).push(tenants::require_active(table, caller.tenant.as_str())?);
    if !on_itself {
        tx = tx.push(members::require_role(table, caller, &ADMINISTRATORS)?);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| refused(error, on_itself))
}

/// The answer to a cancelled change, by the action that failed.
fn refused(error: TxError<AuthLabel>, on_itself: bool) -> AppError {
    const NOT_ALLOWED: &str = "your current role does not allow this change";
    if error.failed(AuthLabel::Caller).is_some() {
        return AppError::forbidden(NOT_ALLOWED);
    }
    if let Some(failure) = error.failed(AuthLabel::Tenant) {
        return crate::auth::service::tenant_refusal(failure);
    }
    if let Some(failure) = error.failed(AuthLabel::Client) {
        let current = failure.item.clone().and_then(|item| clients::decode_item(item).ok());
        return match current {
            // Active, so the condition that failed was the client's own role.
            Some(client) if on_itself && client.status == ClientStatus::Active => {
                AppError::forbidden(NOT_ALLOWED)
            }
            _ => AppError::NotFound("client"),
        };
    }
    error.into_app_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_hold_admin_member_or_auditor_never_owner() {
        let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            client_roles(&names(&["member", "auditor", "member"])).unwrap(),
            [Role::Member, Role::Auditor]
        );
        assert_eq!(client_roles(&names(&["admin"])).unwrap(), [Role::Admin]);
        for bad in [names(&[]), names(&["owner"]), names(&["member", "owner"]), names(&["s3cret"])] {
            match client_roles(&bad) {
                Err(AppError::BadRequest { field, detail }) => {
                    assert_eq!(field.as_deref(), Some("roles"));
                    assert!(!detail.contains("s3cret"));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
