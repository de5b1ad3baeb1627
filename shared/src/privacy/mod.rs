//! Privacy: personal data sealed per person ([`personal`]) and found by
//! keyed hashes ([`lookup`]), erasure by crypto-shredding, re-applied to
//! every restored copy ([`erasure`]), the consents people give and withdraw
//! ([`consents`]), and how long each kind of record is kept ([`retention`]).
//! Items: [`crate::store::user_keys`], [`crate::store::erasures`] (their
//! own table), [`crate::store::consents`],
//! [`crate::store::retention`].

pub mod consents;
pub mod erasure;
pub mod lookup;
pub mod personal;
pub mod retention;
