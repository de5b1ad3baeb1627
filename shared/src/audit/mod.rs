//! The tamper-evident audit log: a per-tenant hash chain of the events the
//! outbox published.
//!
//! - [`chain`]: pure — entry content, hashed bytes, hashes, the verifier
//! - [`service`]: append (audit-writer), verify (verify-audit, backup drills),
//!   list (list-audit)
//! - [`checkpoint`]: pure — signed checkpoints, their bytes and signatures
//! - [`trust`]: signing checkpoints (verify job, audit-writer every N
//!   entries), verifying the live chain against them, the published keys, the
//!   export bundle
//!
//! Appends are serialized per tenant by the FIFO message group (one writer per
//! tenant) and by the head's conditional update (a second writer loses and
//! retries), so the chain has no forks or gaps; a per-event marker written in
//! the same transaction makes redelivery a no-op. Items: [`crate::store::audit`].

pub mod chain;
pub mod checkpoint;
pub mod service;
pub mod trust;

use crate::auth::Authenticated;
use crate::error::AppError;
use crate::payments::ownership::READERS;

pub use chain::{AuditEntry, BreakReason, Checkpoint, GENESIS_HASH};
pub use checkpoint::SignedCheckpoint;
pub use service::{
    AppendOutcome, ChainReport, ListQuery, Page, Start, append_events, append_messages, list, verify_chain,
    verify_chain_from, verify_chain_with,
};

/// The audit routes are for owners, admins and auditors (403 for anyone
/// else), from the token's roles: they change nothing.
pub fn require_reader(who: &Authenticated) -> Result<(), AppError> {
    who.principal.require_any(&READERS)
}
