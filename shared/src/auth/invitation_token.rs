//! Invitation tokens: 256 random bits, prefixed with the tenant (like refresh
//! tokens), single use. Only the SHA-256 of the token is stored, and the email
//! it is bound to only as a hash that needs the token to be computed, so the
//! stored invitation reveals neither.

use super::credentials::Email;
use super::opaque_token;
use crate::tenant::TenantId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

const PREFIX: &str = "inv1";

/// A new token and the hash to store.
pub fn generate(tenant: &TenantId) -> (String, String) {
    opaque_token::generate(PREFIX, tenant)
}

/// The tenant and hash of a presented token, or `None` if it is not one of ours.
pub fn parse(token: &str) -> Option<(TenantId, String)> {
    opaque_token::parse(PREFIX, token)
}

/// What the invitation stores of the email it is for: a hash of the token
/// and the normalized email together, so registration can prove "same
/// email" while the item itself holds no email.
pub fn email_binding(token: &str, email: &Email) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"caas invitation email\n");
    hasher.update(token.as_bytes());
    hasher.update(b"\n");
    hasher.update(email.as_str().as_bytes());
    B64.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_and_bind_one_email() {
        let tenant = TenantId::parse("acme").unwrap();
        let (token, stored) = generate(&tenant);
        assert_eq!(parse(&token), Some((tenant.clone(), stored.clone())));
        assert!(!stored.contains(token.rsplit('.').next().unwrap()));
        let ada = Email::parse("Ada@Example.com").unwrap();
        let bob = Email::parse("bob@example.com").unwrap();
        assert_eq!(
            email_binding(&token, &ada),
            email_binding(&token, &Email::parse("ada@example.com").unwrap())
        );
        assert_ne!(email_binding(&token, &ada), email_binding(&token, &bob));
        let (other, _) = generate(&tenant);
        assert_ne!(email_binding(&token, &ada), email_binding(&other, &ada), "keyed by the token");
        for bad in ["", "inv1.acme", "inv1.acme.short", "rt1.acme.AAAA", "inv1.ACME.x", &"x".repeat(200)] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
