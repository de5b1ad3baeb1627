//! Opaque refresh tokens: 256 random bits, prefixed with the tenant so the
//! stored hash can be found under the tenant's keys. Only the SHA-256 of the
//! whole token is ever stored.

use crate::tenant::TenantId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::TryRng;
use sha2::{Digest, Sha256};

const PREFIX: &str = "rt1";

/// A new token and the hash to store.
pub fn generate(tenant: &TenantId) -> (String, String) {
    let mut secret = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).expect("the operating system's random source");
    let token = format!("{PREFIX}.{tenant}.{}", B64.encode(secret));
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// The tenant and hash of a presented token, or `None` if it is not one of ours.
pub fn parse(token: &str) -> Option<(TenantId, String)> {
    let mut parts = token.split('.');
    let (Some(PREFIX), Some(tenant), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let tenant = TenantId::parse(tenant).ok()?;
    let decoded = B64.decode(secret).ok()?;
    (decoded.len() == 32).then(|| (tenant, hash(token)))
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
