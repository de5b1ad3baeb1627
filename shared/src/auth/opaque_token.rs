//! Opaque bearer secrets (refresh tokens, invitations): `<prefix>.<tenant>.<256
//! random bits>`. The tenant prefix lets the stored hash be found under the
//! tenant's keys; only the SHA-256 of the whole token is ever stored.

use crate::tenant::TenantId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::TryRng;
use sha2::{Digest, Sha256};

/// Upper bound of a token we parse (the prefix, the longest tenant id, the secret).
pub const MAX_TOKEN_BYTES: usize = 128;

/// A new token with `prefix` for `tenant`, and the hash to store.
pub fn generate(prefix: &str, tenant: &TenantId) -> (String, String) {
    let mut secret = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).expect("the operating system's random source");
    let token = format!("{prefix}.{tenant}.{}", B64.encode(secret));
    let hash = hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// The tenant and hash of a presented token with `prefix`, or `None` if it is not one of ours.
pub fn parse(prefix: &str, token: &str) -> Option<(TenantId, String)> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(found), Some(tenant), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if found != prefix {
        return None;
    }
    let tenant = TenantId::parse(tenant).ok()?;
    let decoded = B64.decode(secret).ok()?;
    (decoded.len() == 32).then(|| (tenant, hash(token)))
}
