//! The keyed hash that finds a user by email without storing the email:
//! `HMAC-SHA-256(lookup key, "<tenant>\n<normalized email>")`, lowercase hex
//! (64 characters; never a valid email, which has an `@`). The lookup key is
//! the KMS HMAC key's MAC (`GenerateMac`, `HMAC_SHA_256`) of a fixed label,
//! computed once per container and kept in the [`App`]: the KMS key never
//! leaves KMS, the derived key never leaves memory, and a login needs no KMS
//! call of its own (the first one of a container makes the one `GenerateMac`).

use crate::app::App;
use crate::auth::credentials::Email;
use crate::config::ConfigError;
use crate::error::AppError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the KMS key MACs to give the lookup key (versioned: another label is another key).
const LABEL: &[u8] = b"caas email lookup key v1";

/// The derived lookup key.
#[derive(Clone)]
pub struct LookupKey([u8; 32]);

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey(..)")
    }
}

impl LookupKey {
    /// The lookup hash of `email` in `tenant`.
    pub fn email(&self, tenant: &str, email: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(tenant.as_bytes());
        mac.update(b"\n");
        mac.update(email.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

impl LookupKey {
    /// The keyed hash of a search term (a normalized token or a prefix of
    /// one) of `scope` in `tenant`: what the search index stores instead of
    /// the term ([`crate::search`]). Domain-separated from the email hashes.
    pub fn search_term(&self, tenant: &str, scope: &str, term: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"search\n");
        mac.update(tenant.as_bytes());
        mac.update(b"\n");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(term.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The container's lookup key (one `GenerateMac` the first time).
pub async fn key(app: &App) -> Result<&LookupKey, AppError> {
    app.lookup_key.get_or_try_init(|| derive(app)).await
}

async fn derive(app: &App) -> Result<LookupKey, AppError> {
    let key_id = app.config.lookup_key_id.as_deref().ok_or(ConfigError::Missing("LOOKUP_KEY_ID"))?;
    let output = app
        .clients
        .kms
        .generate_mac()
        .key_id(key_id)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(LABEL))
        .send()
        .await
        .map_err(|e| AppError::from_sdk("derive the lookup key", e))?;
    let mac = output.mac().ok_or_else(|| AppError::Internal("KMS returned no MAC".into()))?;
    let bytes: [u8; 32] =
        mac.as_ref().try_into().map_err(|_| AppError::Internal("the lookup key is not 32 bytes".into()))?;
    Ok(LookupKey(bytes))
}

/// The lookup hash of a normalized email in `tenant`.
pub async fn email(app: &App, tenant: &str, email: &Email) -> Result<String, AppError> {
    Ok(key(app).await?.email(tenant, email.as_str()))
}

/// Whether a user item's key component is a lookup hash (not an email).
pub fn is_lookup(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_per_tenant_and_never_emails() {
        let key = LookupKey([7; 32]);
        let a = key.email("acme", "ada@example.com");
        assert!(is_lookup(&a));
        assert_ne!(a, key.email("globex", "ada@example.com"));
        assert_eq!(a, key.email("acme", "ada@example.com"));
        assert!(!is_lookup("ada@example.com"));
        assert_ne!(key.search_term("acme", "people", "ada"), key.search_term("acme", "messages", "ada"));
        assert_ne!(key.search_term("acme", "people", "ada"), key.search_term("globex", "people", "ada"));
        assert_eq!(key.search_term("acme", "people", "ada"), key.search_term("acme", "people", "ada"));
    }
}
