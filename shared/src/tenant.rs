//! Tenant identifiers. Every key of every item starts with the tenant, so the
//! format excludes our key separator and anything that could forge a prefix.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("tenant_id must be 3 to 64 characters of a-z, 0-9 and '-', starting with a letter or digit")]
pub struct InvalidTenantId;

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, InvalidTenantId> {
        let bytes = value.as_bytes();
        let well_formed = (3..=64).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if well_formed { Ok(Self(value.to_owned())) } else { Err(InvalidTenantId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_and_rejects_key_material() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-eu-1").is_ok());
        for bad in ["", "ab", "-acme", "Acme", "acme#USER", "acme corp", "a".repeat(65).as_str()] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad:?}");
        }
    }
}
