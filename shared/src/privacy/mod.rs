//! Privacy: personal data sealed per person ([`personal`]) and found by
//! keyed hashes ([`lookup`]), erasure by crypto-shredding, re-applied to
//! every restored copy ([`erasure`]), the export of everything held about
//! a person ([`export`]), the consents people give and withdraw
//! ([`consents`]), and how long each kind of record is kept ([`retention`]).
//! Items: [`crate::store::user_keys`], [`crate::store::erasures`] (their
//! own table), [`crate::store::consents`],
//! [`crate::store::retention`].

pub mod consents;
pub mod erasure;
pub mod export;
pub mod lookup;
pub mod personal;
pub mod retention;

use crate::auth::principal::{ADMINISTRATORS, Principal, PrincipalKind};
use crate::error::AppError;

/// Who may act on a person's data (their erasure, their export): the person
/// themselves (`true`), or an owner or admin of the tenant (`false`; else
/// 403). An id that is no user id is no one's: 404.
fn person_or_administrator(caller: &Principal, user_id: &str) -> Result<bool, AppError> {
    let own = caller.kind == PrincipalKind::User && caller.id == user_id;
    if !own {
        caller.require_any(&ADMINISTRATORS)?;
    }
    if !crate::ids::is_valid_id(user_id) {
        return Err(AppError::NotFound("user"));
    }
    Ok(own)
}
