//! Who is calling: the [`Principal`] a verified access token stands for (a
//! user or a tenant's machine client), its tenant and its
//! roles, with the role predicates every authorization decision uses; and the
//! [`Actor`] that events name.
//!
//! Roles come from the token (RFC 9068 §7.2 `roles`). A token's roles can be
//! at most one access-token lifetime old: every role change revokes the
//! user's refresh-token families in the same write. Writes that need a role
//! also re-check it on the stored state, inside their own transaction.

use crate::error::AppError;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The roles of a tenant, most powerful first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including managing owners; a tenant always keeps at least one.
    Owner,
    /// Manages users and invitations, except owners.
    Admin,
    /// Uses the tenant's API.
    Member,
    /// Reads (audit chain, listings).
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Parses a role given in a request body field.
    pub fn from_field(field: &str, text: &str) -> Result<Self, AppError> {
        Self::parse(text).ok_or_else(|| {
            AppError::bad_request(field, format!("{field}: must be owner, admin, member or auditor"))
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of principal a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person who signed in with a password.
    User,
    /// A tenant's machine client (OAuth 2.0 client credentials): `sub` is the
    /// client id, and the token carries `client_id` (RFC 9068).
    Client,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user id or the client id (the token's `sub`).
    pub id: String,
    pub tenant: TenantId,
    pub roles: Vec<Role>,
}

impl Principal {
    /// The principal of the token claims `sub`, `tenant`, `roles` and
    /// `client_id`. Unknown role names are ignored (least privilege), so a
    /// token from a newer release never grants more than its known roles.
    pub fn from_claims(sub: &str, tenant: TenantId, roles: &[String], client_id: Option<&str>) -> Self {
        let kind = if client_id == Some(sub) { PrincipalKind::Client } else { PrincipalKind::User };
        let mut roles: Vec<Role> = roles.iter().filter_map(|r| Role::parse(r)).collect();
        roles.sort();
        roles.dedup();
        Self { kind, id: sub.to_owned(), tenant, roles }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.has_role(*role))
    }

    pub fn is_owner(&self) -> bool {
        self.has_role(Role::Owner)
    }

    /// Owners and admins manage the tenant's users and invitations.
    pub fn can_manage_users(&self) -> bool {
        self.has_any_role(&ADMINISTRATORS)
    }

    /// Refuses (403) unless the principal holds one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), AppError> {
        if self.has_any_role(roles) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(AppError::forbidden(format!("this needs the role {}", names.join(" or "))))
        }
    }

    pub fn actor(&self) -> Actor {
        match self.kind {
            PrincipalKind::User => Actor::user(&self.id),
            PrincipalKind::Client => Actor::client(&self.id),
        }
    }

    pub fn role_names(&self) -> Vec<&'static str> {
        self.roles.iter().map(|r| r.as_str()).collect()
    }
}

/// The roles that administer a tenant's users.
pub const ADMINISTRATORS: [Role; 2] = [Role::Owner, Role::Admin];

/// Who made a change, as events and audit entries name it: never an email or
/// other personal data, only an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Client,
    /// The platform operator, authenticated by IAM when invoking a job function.
    Operator,
}

/// The id operator actions are recorded with: the operator is authenticated
/// by IAM (CloudTrail names the IAM principal of the invocation), not by us.
pub const OPERATOR_ID: &str = "operator";

impl Actor {
    pub fn user(id: &str) -> Self {
        Self { kind: ActorKind::User, id: id.to_owned() }
    }

    pub fn client(id: &str) -> Self {
        Self { kind: ActorKind::Client, id: id.to_owned() }
    }

    pub fn operator() -> Self {
        Self { kind: ActorKind::Operator, id: OPERATOR_ID.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str], client_id: Option<&str>) -> Principal {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        Principal::from_claims("p-1", TenantId::parse("acme").unwrap(), &roles, client_id)
    }

    #[test]
    fn roles_parse_and_unknown_ones_grant_nothing() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Owner"), None);
        let p = principal(&["member", "superuser", "member"], None);
        assert_eq!(p.roles, vec![Role::Member]);
        assert!(!p.can_manage_users());
        assert!(matches!(p.require_any(&ADMINISTRATORS), Err(AppError::Forbidden(_))));
    }

    #[test]
    fn predicates_and_kinds() {
        let owner = principal(&["owner"], None);
        assert!(owner.is_owner() && owner.can_manage_users());
        assert_eq!(owner.kind, PrincipalKind::User);
        assert_eq!(owner.actor(), Actor::user("p-1"));
        let admin = principal(&["admin"], None);
        assert!(admin.can_manage_users() && !admin.is_owner());
        assert!(admin.require_any(&ADMINISTRATORS).is_ok());
        let client = principal(&["member"], Some("p-1"));
        assert_eq!(client.kind, PrincipalKind::Client);
        assert_eq!(client.actor(), Actor::client("p-1"));
        // A client_id naming another client than `sub` is a user token on its behalf.
        assert_eq!(principal(&[], Some("app")).kind, PrincipalKind::User);
    }

    #[test]
    fn actors_serialize_as_type_and_id() {
        assert_eq!(
            serde_json::to_value(Actor::operator()).unwrap(),
            serde_json::json!({"type": "operator", "id": "operator"})
        );
    }
}
