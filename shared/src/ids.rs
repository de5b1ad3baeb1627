//! Identifiers. UUIDv7 everywhere: unique, and time-ordered so sort keys built
//! from them list newest or oldest first without another attribute.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// True for the canonical hyphenated lowercase form we hand out.
pub fn is_valid_id(value: &str) -> bool {
    value.len() == 36 && uuid::Uuid::try_parse(value).is_ok_and(|id| id.hyphenated().to_string() == value)
}
