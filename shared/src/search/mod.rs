//! Search: messages (in the caller's conversations only), conversations (by
//! title and by the participants' display names) and the people of the
//! tenant's directory (by display name).
//!
//! - [`tokens`]: the matching rules (normalization, tokens, prefixes).
//! - [`engine`]: the engine behind one trait, [`engine::Engine`], and the
//!   index of our own in the table that implements it ([`engine::TableIndex`],
//!   items in [`crate::store::search`]): postings per keyed term hash, no
//!   plaintext.
//! - [`indexer`]: the `index-search` function's service, fed by the search
//!   queue outbox-drain publishes to: a write never waits for the index.
//! - [`queries`]: the three search routes; what the engine finds is checked
//!   against the items (the caller's memberships, the current text or name)
//!   before it is shown.
//!
//! Personal data: display names are sealed with the person's key like the
//! email ([`crate::privacy::personal`]); the index holds HMAC hashes of
//! their prefixes under the lookup key ([`crate::privacy::lookup`]) and is
//! shown nothing from: names are opened from the sealed copy, so an erased
//! person (key deleted) is never shown, from the live table or a restored
//! copy, even where stale postings of theirs remain.

pub mod engine;
pub mod indexer;
pub mod queries;
pub mod tokens;
