//! `mfa_token`s: what a login answers when the password was right and a
//! second factor is due (or, in a tenant that requires one, must first be
//! enrolled). Opaque like refresh tokens (256 random bits, tenant-prefixed);
//! only the SHA-256 is stored, in the challenge it names
//! ([`crate::store::mfa::ChallengeRecord`]). Short-lived and single use.

use super::opaque_token;
use crate::tenant::TenantId;

pub const PREFIX: &str = "mf1";
/// How long a challenge can be answered.
pub const TTL_SECONDS: i64 = 300;
/// Wrong codes one challenge takes before it is dead.
pub const MAX_ATTEMPTS: u32 = 5;

pub fn generate(tenant: &TenantId) -> (String, String) {
    opaque_token::generate(PREFIX, tenant)
}

/// The tenant and hash of a presented token, or `None` if it is not one of ours.
pub fn parse(token: &str) -> Option<(TenantId, String)> {
    opaque_token::parse(PREFIX, token)
}

/// Whether a bearer credential is an `mfa_token` (rather than an access token).
pub fn looks_like(token: &str) -> bool {
    token.starts_with("mf1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_and_are_told_from_access_tokens() {
        let tenant = TenantId::parse("acme").unwrap();
        let (token, hash) = generate(&tenant);
        assert!(looks_like(&token));
        assert_eq!(parse(&token), Some((tenant, hash)));
        assert!(!looks_like("eyJhbGciOiJFUzI1NiJ9.e30.sig"));
        for bad in ["", "mf1.acme", "mf1.acme.short", "rt1.acme.AAAA"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
