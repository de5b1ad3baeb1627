//! `POST /v1/consents` and `GET /v1/consents`: a person's consent decisions,
//! an append-only history per user. Every decision is an outbox event (so an
//! audit entry): `consent.granted` or `consent.withdrawn`, naming the user by
//! id, the purpose and the version of the text agreed to; never personal data.
//!
//! Consent is a person's: machine clients are refused (403).

use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::{PrincipalKind, Role};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::paging::PageQuery;
use crate::store::consents::{self as store, ConsentRecord};
use crate::store::labels::PrivacyLabel;
use crate::store::tx::Tx;
use crate::store::{members, tenants};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
/// Every role: any active user of the tenant records their own consents.
const ANY_ROLE: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Auditor];

/// `POST /v1/consents`. Strings are checked here, so an invalid value is
/// named without being echoed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub purpose: String,
    pub version: String,
    pub granted: bool,
}

/// A consent decision as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consent {
    pub consent_id: String,
    pub purpose: String,
    pub version: String,
    pub granted: bool,
    pub recorded_at: String,
}

impl From<ConsentRecord> for Consent {
    fn from(record: ConsentRecord) -> Self {
        Self {
            consent_id: record.consent_id,
            purpose: record.purpose,
            version: record.version,
            granted: record.granted,
            recorded_at: record.recorded_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentPage {
    /// Newest first: the first record of a purpose is its current state.
    pub consents: Vec<Consent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A purpose: a name the tenant chose for what the data is used for
/// (`marketing_email`, `analytics.v2`): 1 to 64 of `a-z 0-9 _ . -`, starting
/// with a letter or digit. Free text is refused, so no personal data can hide in it.
fn purpose(text: &str) -> Result<String, AppError> {
    let valid = (1..=64).contains(&text.len())
        && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(AppError::bad_request(
            "purpose",
            "purpose: 1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
        ))
    }
}

/// The version of the text consented to (`2026-01`, `v3`): 1 to 32 of
/// `A-Z a-z 0-9 _ . -`.
fn version(text: &str) -> Result<String, AppError> {
    let valid = (1..=32).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(AppError::bad_request("version", "version: 1 to 32 of A-Z, a-z, 0-9, '_', '.', '-'"))
    }
}

fn require_person(who: &Authenticated) -> Result<(), AppError> {
    if who.principal.kind == PrincipalKind::Client {
        return Err(AppError::forbidden(
            "consents are given by the person they belong to, not by a machine client",
        ));
    }
    Ok(())
}

/// Records the caller's decision. One transaction: the record, its event,
/// the tenant still active and the caller still an active user (their
/// directory entry).
pub async fn record(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    request: ConsentRequest,
) -> Result<Consent, AppError> {
    require_person(who)?;
    let purpose = purpose(&request.purpose)?;
    let version = version(&request.version)?;
    let now = app.now();
    let table = &app.config.table_name;
    let record = ConsentRecord {
        tenant_id: who.tenant.to_string(),
        user_id: who.user_id.clone(),
        consent_id: crate::ids::new_id(),
        purpose,
        version,
        granted: request.granted,
        recorded_at: rfc3339(now),
    };
    let event_type = if record.granted { "consent.granted" } else { "consent.withdrawn" };
    let event = OutboxEvent::new(
        &who.tenant,
        "consent",
        &record.consent_id,
        event_type,
        now,
        &ctx.correlation_id,
        json!({
            "consent_id": record.consent_id,
            "user_id": record.user_id,
            "purpose": record.purpose,
            "version": record.version,
            "granted": record.granted,
        }),
    )
    .by(&who.principal.actor());
    Tx::new(table, &event)?
        .push(store::insert(table, &record)?)
        .push(tenants::require_active_as(table, PrivacyLabel::Tenant, who.tenant.as_str())?)
        .push(members::require_role_as(table, PrivacyLabel::Caller, &who.principal, &ANY_ROLE)?)
        .commit(&app.clients.dynamodb)
        .await
        .map_err(|error| {
            if error.failed(PrivacyLabel::Caller).is_some() {
                AppError::forbidden("your account is not active")
            } else if error.failed(PrivacyLabel::Tenant).is_some() {
                AppError::forbidden("the tenant is not active")
            } else {
                error.into_app_error()
            }
        })?;
    tracing::info!(tenant = %who.tenant, consent_id = %record.consent_id, granted = record.granted, "consent recorded");
    Ok(record.into())
}

/// `GET /v1/consents?limit=&cursor=`: the caller's history, newest first.
pub async fn list(
    app: &App,
    who: &Authenticated,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<ConsentPage, AppError> {
    require_person(who)?;
    let page = PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let (records, next_cursor) = store::page(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &who.user_id,
        page.limit,
        page.after.as_deref(),
    )
    .await?;
    Ok(ConsentPage { consents: records.into_iter().map(Consent::from).collect(), next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<String, AppError>) -> Option<String> {
        match result {
            Err(AppError::BadRequest { field, .. }) => field,
            Ok(_) => None,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn purposes_and_versions_are_names_not_free_text() {
        for ok in ["marketing_email", "analytics.v2", "a", "0-terms"] {
            assert_eq!(purpose(ok).unwrap(), ok);
        }
        for bad in ["", "Marketing", "_x", "ada@example.com", "with space", &"a".repeat(65), "é"] {
            assert_eq!(field(purpose(bad)).as_deref(), Some("purpose"), "{bad:?}");
        }
        for ok in ["2026-01", "v3", "A.b_c-1"] {
            assert_eq!(version(ok).unwrap(), ok);
        }
        for bad in ["", "1 0", "x@y", &"1".repeat(33)] {
            assert_eq!(field(version(bad)).as_deref(), Some("version"), "{bad:?}");
        }
    }
}
