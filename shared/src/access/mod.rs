//! Access administration: tenants (the operator's `tenants` job), invitations,
//! the tenant's users and machine clients (its owners' and admins' routes),
//! and `GET /v1/me`.
//!
//! Every check on stored state rides in the operation's own read or
//! transaction: an admin write re-checks the caller's role on their directory
//! entry, the tenant's status (and, for owners, its owner count) on the
//! tenant item, and the target's state on what was read, all as conditions
//! of the one `TransactWriteItems` that makes the change.

pub mod clients;
pub mod invitations;
pub mod tenants;
pub mod users;

use crate::error::AppError;

/// Longest name of a tenant or a machine client.
pub(crate) const MAX_NAME_CHARS: usize = 200;

/// A display name in `field`: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no
/// control characters; refused without echoing it.
pub(crate) fn display_name(field: &str, raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            field,
            format!("{field}: must be 1 to {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}
