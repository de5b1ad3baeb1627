//! Privacy: personal data sealed per person ([`personal`]) and found by
//! keyed hashes ([`lookup`]), the consents people give and withdraw
//! ([`consents`]), and how long each kind of record is kept ([`retention`]).
//! Items: [`crate::store::user_keys`], [`crate::store::consents`],
//! [`crate::store::retention`].

pub mod consents;
pub mod lookup;
pub mod personal;
pub mod retention;
