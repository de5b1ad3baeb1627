//! Who may see and move which money, pure. Every account has an [`Owner`]
//! (the tenant, a user or a machine client), fixed when it is created; a
//! payment records the owners of both its accounts when it is authorized.
//! The rules decide from those owners and the caller's roles:
//!
//! | what | allowed | may see it but not this: 403 | anyone else: 404 |
//! | --- | --- | --- | --- |
//! | read an account | its owner, owner, admin, auditor | | yes |
//! | authorize | the payer account's owner, owner, admin | auditor | yes |
//! | capture, void | either account's owner, owner, admin | auditor | yes |
//! | refund | the payee account's owner, owner, admin | the payer's owner, auditor | yes |
//! | read a payment | either account's owner, owner, admin, auditor | | yes |
//!
//! A decision is a [`Grant`]: what the operation's transaction must pin so
//! the check and the change are one write (the owner as a condition on that
//! account's balance update, or the caller's role on their directory entry).

use crate::auth::principal::{ADMINISTRATORS, Principal, PrincipalKind, Role};
use crate::error::AppError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// The roles that see every account and payment of their tenant.
pub const READERS: [Role; 3] = [Role::Owner, Role::Admin, Role::Auditor];

/// Whose an account is. Stored and compared as its text (`tenant`,
/// `user:<id>`, `client:<id>`); shown in the API as `{"type", "id"?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The tenant itself: only owners and admins move its money. Accounts
    /// stored before ownership existed read as tenant-owned.
    #[default]
    Tenant,
    User(String),
    Client(String),
}

const TENANT_TEXT: &str = "tenant";
const USER_PREFIX: &str = "user:";
const CLIENT_PREFIX: &str = "client:";

impl Owner {
    /// The owner of what `principal` creates for itself.
    pub fn of(principal: &Principal) -> Self {
        match principal.kind {
            PrincipalKind::User => Owner::User(principal.id.clone()),
            PrincipalKind::Client => Owner::Client(principal.id.clone()),
        }
    }

    /// Whether `principal` is this owner (never true of the tenant).
    pub fn is(&self, principal: &Principal) -> bool {
        *self == Owner::of(principal)
    }

    pub fn text(&self) -> String {
        match self {
            Owner::Tenant => TENANT_TEXT.to_owned(),
            Owner::User(id) => format!("{USER_PREFIX}{id}"),
            Owner::Client(id) => format!("{CLIENT_PREFIX}{id}"),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text == TENANT_TEXT {
            return Some(Owner::Tenant);
        }
        let nonempty = |id: &str| (!id.is_empty()).then(|| id.to_owned());
        match (text.strip_prefix(USER_PREFIX), text.strip_prefix(CLIENT_PREFIX)) {
            (Some(id), _) => nonempty(id).map(Owner::User),
            (_, Some(id)) => nonempty(id).map(Owner::Client),
            _ => None,
        }
    }

    /// The API form: `{"type": "tenant"}`, `{"type": "user" | "client", "id": ...}`.
    pub fn view(&self) -> Value {
        match self {
            Owner::Tenant => json!({ "type": "tenant" }),
            Owner::User(id) => json!({ "type": "user", "id": id }),
            Owner::Client(id) => json!({ "type": "client", "id": id }),
        }
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Owner::parse(&text).ok_or_else(|| serde::de::Error::custom("not an account owner"))
    }
}

/// A payment's side: whose account a balance update is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Payer,
    Payee,
}

/// Why a caller may make a change, and so what its transaction pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The caller owns the account on this side: that account's balance
    /// update is conditional on its owner being the caller.
    Owns(Side),
    /// The caller's owner or admin role: re-checked on the caller's own
    /// directory entry in the same transaction.
    Role,
}

/// Whether `principal` may see what these owners own.
pub fn can_read(principal: &Principal, owners: &[&Owner]) -> bool {
    principal.has_any_role(&READERS) || owners.iter().any(|owner| owner.is(principal))
}

/// Authorizing a payment from an account of `payer`.
pub fn may_authorize(principal: &Principal, payer: &Owner) -> Result<Grant, AppError> {
    permit(principal, &[(Side::Payer, payer)], &[payer], "payer account")
}

/// Capturing or voiding a payment between accounts of `payer` and `payee`.
pub fn may_settle(principal: &Principal, payer: &Owner, payee: &Owner) -> Result<Grant, AppError> {
    permit(principal, &[(Side::Payer, payer), (Side::Payee, payee)], &[payer, payee], "payment")
}

/// Refunding a payment: the payee gives the money back; the payer alone cannot take it.
pub fn may_refund(principal: &Principal, payer: &Owner, payee: &Owner) -> Result<Grant, AppError> {
    permit(principal, &[(Side::Payee, payee)], &[payer, payee], "payment")
}

fn permit(
    principal: &Principal,
    acting: &[(Side, &Owner)],
    visible: &[&Owner],
    what: &'static str,
) -> Result<Grant, AppError> {
    if let Some((side, _)) = acting.iter().find(|(_, owner)| owner.is(principal)) {
        return Ok(Grant::Owns(*side));
    }
    if principal.has_any_role(&ADMINISTRATORS) {
        return Ok(Grant::Role);
    }
    if can_read(principal, visible) {
        Err(AppError::forbidden(format!("your role does not allow this on this {what}")))
    } else {
        Err(AppError::NotFound(what))
    }
}

/// Who a new account belongs to, and whether creating it needs the
/// caller's owner or admin role: an overdraft, or an owner other than the
/// caller, does (a member asking for either: 403).
pub fn account_owner(
    principal: &Principal,
    requested: Option<Owner>,
    overdraft: bool,
) -> Result<(Owner, Option<Grant>), AppError> {
    let privileged = requested.as_ref().is_some_and(|owner| !owner.is(principal)) || overdraft;
    if privileged && !principal.has_any_role(&ADMINISTRATORS) {
        let what = if overdraft { "an overdraft" } else { "an owner" };
        return Err(AppError::forbidden(format!("only owners and admins may give an account {what}")));
    }
    let owner = requested.unwrap_or_else(|| Owner::of(principal));
    Ok((owner, privileged.then_some(Grant::Role)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantId;

    fn principal(id: &str, roles: &[&str], client: bool) -> Principal {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let client_id = client.then_some(id);
        Principal::from_claims(id, TenantId::parse("acme").unwrap(), &roles, client_id)
    }

    #[test]
    fn owners_round_trip_through_their_text() {
        for owner in [Owner::Tenant, Owner::User("u-1".into()), Owner::Client("c-1".into())] {
            assert_eq!(Owner::parse(&owner.text()), Some(owner.clone()));
            let json = serde_json::to_value(&owner).unwrap();
            assert_eq!(serde_json::from_value::<Owner>(json).unwrap(), owner);
        }
        for bad in ["", "user:", "client:", "User:x", "group:x"] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
        assert_eq!(Owner::Client("c".into()).view(), json!({"type": "client", "id": "c"}));
    }

    #[test]
    fn the_payment_rules() {
        let payer = principal("payer", &["member"], false);
        let payee = principal("payee", &["member"], false);
        let other = principal("other", &["member"], false);
        let admin = principal("admin", &["admin"], false);
        let auditor = principal("auditor", &["auditor"], false);
        let (a, b) = (Owner::of(&payer), Owner::of(&payee));

        assert_eq!(may_authorize(&payer, &a).unwrap(), Grant::Owns(Side::Payer));
        assert!(matches!(may_authorize(&payee, &a), Err(AppError::NotFound(_))));
        assert!(matches!(may_authorize(&auditor, &a), Err(AppError::Forbidden(_))));
        assert_eq!(may_authorize(&admin, &a).unwrap(), Grant::Role);

        assert_eq!(may_settle(&payee, &a, &b).unwrap(), Grant::Owns(Side::Payee));
        assert!(matches!(may_settle(&other, &a, &b), Err(AppError::NotFound(_))));

        assert!(matches!(may_refund(&payer, &a, &b), Err(AppError::Forbidden(_))), "never the payer alone");
        assert_eq!(may_refund(&payee, &a, &b).unwrap(), Grant::Owns(Side::Payee));
        assert_eq!(may_refund(&admin, &a, &b).unwrap(), Grant::Role);
        assert!(matches!(may_refund(&other, &a, &b), Err(AppError::NotFound(_))));

        assert!(can_read(&auditor, &[&Owner::Tenant]) && !can_read(&other, &[&a, &b]));
        // A client with the user's id is another principal.
        assert!(!a.is(&principal("payer", &["member"], true)));
    }

    #[test]
    fn overdrafts_and_chosen_owners_need_an_administrator() {
        let member = principal("m", &["member"], false);
        assert_eq!(account_owner(&member, None, false).unwrap(), (Owner::User("m".into()), None));
        assert!(matches!(account_owner(&member, None, true), Err(AppError::Forbidden(_))));
        assert!(matches!(account_owner(&member, Some(Owner::Tenant), false), Err(AppError::Forbidden(_))));
        let itself = Some(Owner::User("m".into()));
        assert_eq!(account_owner(&member, itself, false).unwrap(), (Owner::User("m".into()), None));
        let admin = principal("a", &["admin"], false);
        assert_eq!(
            account_owner(&admin, Some(Owner::Tenant), true).unwrap(),
            (Owner::Tenant, Some(Grant::Role))
        );
    }
}
