//! Access administration: tenants (the operator's `tenants` job), invitations
//! and the tenant's users (its owners' and admins' routes), and `GET /v1/me`.
//!
//! Every check on stored state rides in the operation's own read or
//! transaction: an admin write re-checks the caller's role on their directory
//! entry, the tenant's status (and, for owners, its owner count) on the
//! tenant item, and the target's state on what was read, all as conditions
//! of the one `TransactWriteItems` that makes the change.

pub mod invitations;
pub mod tenants;
pub mod users;
