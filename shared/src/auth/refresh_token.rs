//! Opaque refresh tokens: 256 random bits, prefixed with the tenant so the
//! stored hash can be found under the tenant's keys. Only the SHA-256 of the
//! whole token is ever stored.

use super::opaque_token;
use crate::tenant::TenantId;

const PREFIX: &str = "rt1";

/// A new token and the hash to store.
pub fn generate(tenant: &TenantId) -> (String, String) {
    opaque_token::generate(PREFIX, tenant)
}

pub fn hash(token: &str) -> String {
    opaque_token::hash(token)
}

/// The tenant and hash of a presented token, or `None` if it is not one of ours.
pub fn parse(token: &str) -> Option<(TenantId, String)> {
    opaque_token::parse(PREFIX, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_to_their_tenant_and_hash() {
        let tenant = TenantId::parse("acme").unwrap();
        let (token, stored) = generate(&tenant);
        assert_eq!(parse(&token), Some((tenant.clone(), stored.clone())));
        assert!(!stored.contains(token.rsplit('.').next().unwrap()));
        let (other, _) = generate(&tenant);
        assert_ne!(token, other);
        for bad in ["", "rt1.acme", "rt1.acme.short", "rt2.acme.AAAA", "rt1.ACME.x"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
