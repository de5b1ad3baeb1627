//! Privacy: the consents people give and withdraw ([`consents`]), and how
//! long each kind of record is kept ([`retention`]). Items:
//! [`crate::store::consents`], [`crate::store::retention`].

pub mod consents;
pub mod retention;
