//! The operator's tenant administration, behind the `tenants` job (direct
//! invoke only: IAM is the operator's authentication). Every change writes
//! its event with the actor `{type: operator}`.
//!
//! - `create` {tenant_id, name, signup?, owner_email}: the tenant and a
//!   one-time invitation for its first owner (the token is in the answer only)
//! - `get` {tenant_id}, `list` {limit?, cursor?}
//! - `update` {tenant_id, name?, signup?, mfa_required_roles?}: the roles
//!   whose users must sign in with a second factor (`[]`: none)
//! - `suspend` / `reactivate` {tenant_id}
//! - `invite` {tenant_id, email, role?}: another invitation (default role
//!   owner), e.g. when the first owner's expired unused
//! - `set_overdraft_limit` {tenant_id, account_id, overdraft_limit}: an
//!   overdraft account's limit (see [`crate::payments::accounts::set_overdraft_limit`])

use super::invitations::{self, IssuedInvitation};
use crate::app::App;
use crate::auth::credentials::Email;
use crate::auth::principal::{Actor, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use crate::store::labels::AuthLabel;
use crate::store::tenants::{self as store, Signup, TenantRecord, TenantStatus};
use crate::store::tx::Tx;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// One operator command, as the job receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Create {
        tenant_id: String,
        name: String,
        /// `invite_only` (the default) or `open`.
        #[serde(default)]
        signup: Option<String>,
        owner_email: String,
    },
    Get {
        tenant_id: String,
    },
    List {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        cursor: Option<String>,
    },
    Update {
        tenant_id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        signup: Option<String>,
        /// Role names; checked here, so a wrong one is named.
        #[serde(default)]
        mfa_required_roles: Option<Vec<String>>,
    },
    Suspend {
        tenant_id: String,
    },
    Reactivate {
        tenant_id: String,
    },
    Invite {
        tenant_id: String,
        email: String,
        #[serde(default)]
        role: Option<String>,
    },
    SetOverdraftLimit {
        tenant_id: String,
        account_id: String,
        /// Minor units; checked by the payments service, so a bad value is named.
        overdraft_limit: Value,
    },
    /// The tenant's retention policy (`crate::privacy::retention`): the
    /// values given change, the others stay.
    SetRetention {
        tenant_id: String,
        #[serde(default)]
        outbox_days: Option<Value>,
        #[serde(default)]
        payment_events_days: Option<Value>,
        #[serde(default)]
        audit_days: Option<Value>,
    },
}

/// `create`'s answer: the tenant and its first owner's invitation.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub tenant: TenantRecord,
    pub owner_invitation: IssuedInvitation,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub tenants: Vec<TenantRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Runs one command; `correlation_id` (the invocation's request id) links
/// the events to the invocation.
pub async fn run(app: &App, correlation_id: &str, command: Command) -> Result<Value, AppError> {
    match command {
        Command::Create { tenant_id, name, signup, owner_email } => {
            let signup = signup.as_deref().map(signup_of).transpose()?.unwrap_or_default();
            encode(create(app, correlation_id, &tenant_id, &name, signup, &owner_email).await)
        }
        Command::Get { tenant_id } => encode(get(app, &tenant_id).await),
        Command::List { limit, cursor } => encode(list(app, limit, cursor.as_deref()).await),
        Command::Update { tenant_id, name, signup, mfa_required_roles } => {
            let signup = signup.as_deref().map(signup_of).transpose()?;
            let mfa_roles = mfa_required_roles
                .map(|roles| {
                    let mut parsed = roles
                        .iter()
                        .map(|r| Role::from_field("mfa_required_roles", r))
                        .collect::<Result<Vec<_>, _>>()?;
                    parsed.sort_by_key(|r| r.as_str());
                    parsed.dedup();
                    Ok::<_, AppError>(parsed)
                })
                .transpose()?;
            let settings = Settings { name: name.as_deref(), signup, mfa_required_roles: mfa_roles };
            encode(update(app, correlation_id, &tenant_id, settings).await)
        }
        Command::Suspend { tenant_id } => {
            encode(set_status(app, correlation_id, &tenant_id, TenantStatus::Suspended).await)
        }
        Command::Reactivate { tenant_id } => {
            encode(set_status(app, correlation_id, &tenant_id, TenantStatus::Active).await)
        }
        Command::Invite { tenant_id, email, role } => {
            let role =
                role.as_deref().map(|r| Role::from_field("role", r)).transpose()?.unwrap_or(Role::Owner);
            encode(invite(app, correlation_id, &tenant_id, &email, role).await)
        }
        Command::SetOverdraftLimit { tenant_id: tenant, account_id, overdraft_limit } => {
            let tenant = tenant_id(&tenant)?;
            crate::payments::accounts::set_overdraft_limit(
                app,
                correlation_id,
                &tenant,
                &account_id,
                &overdraft_limit,
            )
            .await
        }
        Command::SetRetention { tenant_id: tenant, outbox_days, payment_events_days, audit_days } => {
            let tenant = tenant_id(&tenant)?;
            let change =
                crate::privacy::retention::PolicyChange { outbox_days, payment_events_days, audit_days };
            encode(crate::privacy::retention::set_policy(app, correlation_id, &tenant, &change).await)
        }
    }
}

fn encode(answer: Result<impl Serialize, AppError>) -> Result<Value, AppError> {
    serde_json::to_value(answer?).map_err(|e| AppError::internal("encode answer", e))
}

/// Parsed here rather than by serde, so a wrong value is named by its field
/// (the tagged command loses serde's field path) without being echoed.
fn signup_of(text: &str) -> Result<Signup, AppError> {
    match text {
        "invite_only" => Ok(Signup::InviteOnly),
        "open" => Ok(Signup::Open),
        _ => Err(AppError::bad_request("signup", "signup: must be invite_only or open")),
    }
}

fn tenant_id(raw: &str) -> Result<TenantId, AppError> {
    TenantId::parse(raw).map_err(|e| AppError::bad_request("tenant_id", format!("tenant_id: {e}")))
}

fn tenant_name(raw: &str) -> Result<String, AppError> {
    super::display_name("name", raw)
}

fn owner_email(raw: &str, field: &str) -> Result<Email, AppError> {
    Email::parse(raw)
        .map_err(|_| AppError::bad_request(field, format!("{field}: is not a valid email address")))
}

pub async fn create(
    app: &App,
    correlation_id: &str,
    tenant_id_raw: &str,
    name: &str,
    signup: Signup,
    owner: &str,
) -> Result<Created, AppError> {
    let tenant = tenant_id(tenant_id_raw)?;
    let name = tenant_name(name)?;
    let email = owner_email(owner, "owner_email")?;
    let now = app.now();
    let at = rfc3339(now);
    let record = TenantRecord {
        tenant_id: tenant.to_string(),
        name,
        signup,
        status: TenantStatus::Active,
        owner_count: 0,
        created_at: at.clone(),
        updated_at: at,
        suspended_at: None,
        mfa_required_roles: Vec::new(),
    };
    let actor = Actor::operator();
    let created = OutboxEvent::new(
        &tenant,
        "tenant",
        tenant.as_str(),
        "tenant.created",
        now,
        correlation_id,
        json!({ "tenant_id": tenant, "name": record.name, "signup": signup }),
    )
    .by(&actor);
    let invitation = invitations::prepare(app, correlation_id, &tenant, &email, Role::Owner, &actor, now);
    let table = &app.config.table_name;
    Tx::new(table, &created)?
        .event(&invitation.event)?
        .push(store::insert(table, &record)?)
        .push(crate::store::invitations::insert(table, &invitation.token_hash, &invitation.record)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match error.failed(AuthLabel::Tenant) {
            Some(_) => AppError::Conflict(format!("tenant {tenant} already exists")),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %tenant, signup = ?signup, "tenant created");
    Ok(Created { tenant: record, owner_invitation: invitation.issued })
}

async fn find(app: &App, tenant: &TenantId) -> Result<TenantRecord, AppError> {
    store::find(&app.clients.dynamodb, &app.config.table_name, tenant.as_str())
        .await?
        .ok_or(AppError::NotFound("tenant"))
}

pub async fn get(app: &App, tenant_id_raw: &str) -> Result<TenantRecord, AppError> {
    find(app, &tenant_id(tenant_id_raw)?).await
}

pub async fn list(app: &App, limit: Option<u32>, cursor: Option<&str>) -> Result<Page, AppError> {
    let limit = crate::paging::page_limit(limit.map(|l| l.to_string()).as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let after = cursor
        .map(|c| {
            TenantId::parse(c)
                .map_err(|_| AppError::bad_request("cursor", "cursor: is not a cursor of this list"))
        })
        .transpose()?;
    let (tenants, next_cursor) = store::page(
        &app.clients.dynamodb,
        &app.config.table_name,
        limit,
        after.as_ref().map(TenantId::as_str),
    )
    .await?;
    Ok(Page { tenants, next_cursor })
}

/// The settings an `update` changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct Settings<'a> {
    pub name: Option<&'a str>,
    pub signup: Option<Signup>,
    pub mfa_required_roles: Option<Vec<Role>>,
}

pub async fn update(
    app: &App,
    correlation_id: &str,
    tenant_id_raw: &str,
    settings: Settings<'_>,
) -> Result<TenantRecord, AppError> {
    let tenant = tenant_id(tenant_id_raw)?;
    let name = settings.name.map(tenant_name).transpose()?;
    let signup = settings.signup;
    if name.is_none() && signup.is_none() && settings.mfa_required_roles.is_none() {
        return Err(AppError::bad_request("body", "update needs name or signup (or mfa_required_roles)"));
    }
    // The operator's read-modify-write: the settings are the operator's own,
    // with no rule across items to protect, so the last update wins.
    let mut record = find(app, &tenant).await?;
    let now = app.now();
    record.name = name.unwrap_or(record.name);
    record.signup = signup.unwrap_or(record.signup);
    if let Some(roles) = settings.mfa_required_roles {
        record.mfa_required_roles = roles;
    }
    record.updated_at = rfc3339(now);
    let event = OutboxEvent::new(
        &tenant,
        "tenant",
        tenant.as_str(),
        "tenant.updated",
        now,
        correlation_id,
        json!({
            "tenant_id": tenant,
            "name": record.name,
            "signup": record.signup,
            "mfa_required_roles": record.mfa_required_roles,
        }),
    )
    .by(&Actor::operator());
    let table = &app.config.table_name;
    Tx::new(table, &event)?
        .push(store::update_settings(table, &record)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match error.failed(AuthLabel::Tenant) {
            Some(_) => AppError::NotFound("tenant"),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %tenant, "tenant updated");
    Ok(record)
}

/// Suspends or reactivates. Already in that state: 409, nothing written.
pub async fn set_status(
    app: &App,
    correlation_id: &str,
    tenant_id_raw: &str,
    to: TenantStatus,
) -> Result<TenantRecord, AppError> {
    let tenant = tenant_id(tenant_id_raw)?;
    let (from, event_type) = match to {
        TenantStatus::Suspended => (TenantStatus::Active, "tenant.suspended"),
        TenantStatus::Active => (TenantStatus::Suspended, "tenant.reactivated"),
    };
    let now = app.now();
    let at = rfc3339(now);
    let event = OutboxEvent::new(
        &tenant,
        "tenant",
        tenant.as_str(),
        event_type,
        now,
        correlation_id,
        json!({ "tenant_id": tenant }),
    )
    .by(&Actor::operator());
    let table = &app.config.table_name;
    let committed = Tx::new(table, &event)?
        .push(store::set_status(table, tenant.as_str(), from, to, &at)?)
        .commit(&app.clients.dynamodb)
        .await;
    if let Err(error) = committed {
        return Err(match error.failed(AuthLabel::Tenant).map(|f| f.item.clone()) {
            Some(Some(_)) => AppError::Conflict(format!("tenant {tenant} is already {}", status_name(to))),
            Some(None) => AppError::NotFound("tenant"),
            None => error.into_app_error(),
        });
    }
    tracing::info!(tenant = %tenant, status = status_name(to), "tenant status changed");
    find(app, &tenant).await
}

fn status_name(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    }
}

/// Another invitation into an active tenant, by the operator.
pub async fn invite(
    app: &App,
    correlation_id: &str,
    tenant_id_raw: &str,
    email: &str,
    role: Role,
) -> Result<IssuedInvitation, AppError> {
    let tenant = tenant_id(tenant_id_raw)?;
    let email = owner_email(email, "email")?;
    let table = &app.config.table_name;
    let invitation =
        invitations::prepare(app, correlation_id, &tenant, &email, role, &Actor::operator(), app.now());
    Tx::new(table, &invitation.event)?
        .push(crate::store::invitations::insert(table, &invitation.token_hash, &invitation.record)?)
        .push(store::require_active(table, tenant.as_str())?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| match error.failed(AuthLabel::Tenant).map(|f| f.item.clone()) {
            Some(Some(_)) => AppError::Conflict(format!("tenant {tenant} is suspended")),
            Some(None) => AppError::NotFound("tenant"),
            None => error.into_app_error(),
        })?;
    tracing::info!(tenant = %tenant, invitation_id = %invitation.issued.invitation_id, role = %role, "invitation created");
    Ok(invitation.issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<Command, AppError> {
        crate::http::from_value(value)
    }

    #[test]
    fn commands_parse_with_defaults_and_refuse_strays() {
        assert_eq!(
            parse(json!({"action": "create", "tenant_id": "acme", "name": "Acme", "owner_email": "o@example.com"}))
                .unwrap(),
            Command::Create {
                tenant_id: "acme".into(),
                name: "Acme".into(),
                signup: None,
                owner_email: "o@example.com".into(),
            }
        );
        assert_eq!(
            parse(json!({"action": "update", "tenant_id": "acme", "signup": "open"})).unwrap(),
            Command::Update {
                tenant_id: "acme".into(),
                name: None,
                signup: Some("open".into()),
                mfa_required_roles: None
            }
        );
        assert_eq!(parse(json!({"action": "list"})).unwrap(), Command::List { limit: None, cursor: None });
        for bad in [
            json!({"action": "create", "tenant_id": "acme", "name": "Acme"}),
            json!({"action": "get", "tenant_id": "acme", "extra": 1}),
            json!({"action": "delete", "tenant_id": "acme"}),
            json!({"tenant_id": "acme"}),
        ] {
            assert!(matches!(parse(bad.clone()), Err(AppError::BadRequest { .. })), "{bad}");
        }
    }

    #[test]
    fn signup_modes_are_named_without_echoing_values() {
        assert_eq!(signup_of("open").unwrap(), Signup::Open);
        match signup_of("everyone") {
            Err(AppError::BadRequest { field, detail }) => {
                assert_eq!(field.as_deref(), Some("signup"));
                assert!(!detail.contains("everyone"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(tenant_name("  Acme Corp ").unwrap(), "Acme Corp");
        for bad in ["", "   ", "a\u{7}b"] {
            assert!(tenant_name(bad).is_err(), "{bad:?}");
        }
        assert!(tenant_name(&"n".repeat(crate::access::MAX_NAME_CHARS + 1)).is_err());
    }
}
