//! Machine clients' secrets: `cs1.<tenant>.<256 random bits>` (the opaque
//! token format), stored only as SHA-256. A secret of 256 random bits needs
//! no slow hash (Argon2 defends guessable passwords; nothing guesses 2^256),
//! so verification is one SHA-256 and a constant-time comparison.

use super::opaque_token;
use crate::tenant::TenantId;
use subtle::ConstantTimeEq;

const PREFIX: &str = "cs1";

/// A new secret for a client of `tenant`, and the hash to store.
pub fn generate(tenant: &TenantId) -> (String, String) {
    opaque_token::generate(PREFIX, tenant)
}

/// The tenant and hash of a presented secret, or `None` if it is not one of ours.
pub fn parse(secret: &str) -> Option<(TenantId, String)> {
    opaque_token::parse(PREFIX, secret)
}

/// The hashes a client accepts at `now`: its current one, and the previous
/// one until its grace period ends.
pub struct Accepted<'a> {
    pub current: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub previous_until: Option<i64>,
}

impl Accepted<'_> {
    /// Whether `presented` (a hash) is accepted at `now`; both comparisons
    /// always run, in constant time.
    pub fn accepts(&self, presented: &str, now: i64) -> bool {
        let current = self.current.map_or(0, |stored| equal(stored, presented));
        let in_grace = self.previous_until.is_some_and(|until| now < until);
        let previous = self.previous.map_or(0, |stored| equal(stored, presented));
        current == 1 || (in_grace && previous == 1)
    }
}

fn equal(stored: &str, presented: &str) -> u8 {
    stored.as_bytes().ct_eq(presented.as_bytes()).unwrap_u8()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_back_and_verify_within_their_grace() {
        let tenant = TenantId::parse("acme").unwrap();
        let (secret, stored) = generate(&tenant);
        assert!(secret.starts_with("cs1.acme."));
        assert_eq!(parse(&secret), Some((tenant.clone(), stored.clone())));
        let (old_secret, old) = generate(&tenant);
        let accepted = Accepted { current: Some(&stored), previous: Some(&old), previous_until: Some(100) };
        assert!(accepted.accepts(&stored, 1_000));
        assert!(accepted.accepts(&old, 99));
        assert!(!accepted.accepts(&old, 100), "the grace period ended");
        let (_, other) = generate(&tenant);
        assert!(!accepted.accepts(&other, 0));
        let revoked = Accepted { current: None, previous: None, previous_until: None };
        assert!(!revoked.accepts(&stored, 0));
        for bad in ["", "cs1.acme", "rt1.acme.AAAA", old_secret.replace("cs1", "inv1").as_str()] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
