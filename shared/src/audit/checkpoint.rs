//! Signed checkpoints of a tenant's chain, pure: the signed bytes, the
//! signature codec, and checking a checkpoint against a public key.
//!
//! A checkpoint states "the chain of `tenant_id` had `head_hash` at `seq`, at
//! `time`". The signed bytes (format 1) are the sorted JSON
//! (`crate::sorted_json`) of
//!
//! ```json
//! {"format":"caas.audit.checkpoint.v1","head_hash":…,"seq":…,"tenant_id":…,"time":…}
//! ```
//!
//! signed with ES256 (RFC 7518 §3.4: ECDSA P-256 over SHA-256 of those
//! bytes), the signature written as base64url without padding of the 64-byte
//! `R ‖ S`, with S in the lower half of the group order. docs/EVENTS.md
//! states the same for outside verifiers.

use super::chain::Checkpoint;
use crate::auth::jwt::{KeyError, TokenKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier;
use serde::{Deserialize, Serialize};

/// The `format` member of the signed bytes.
pub const FORMAT: &str = "caas.audit.checkpoint.v1";

/// A checkpoint with its signature, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub tenant_id: String,
    pub seq: u64,
    pub head_hash: String,
    /// When it was signed (RFC 3339 UTC, seconds).
    pub time: String,
    /// The `kid` of the signing key in `/.well-known/audit-keys.json`.
    pub key_id: String,
    /// base64url (no padding) of the raw 64-byte `R ‖ S`, low S.
    pub signature: String,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is signed by an unknown key")]
    UnknownKey,
    #[error("the checkpoint signature is malformed")]
    Malformed,
    #[error("the checkpoint signature does not verify")]
    BadSignature,
}

/// The bytes a checkpoint's signature covers.
pub fn signed_bytes(tenant_id: &str, seq: u64, head_hash: &str, time: &str) -> Vec<u8> {
    let content = serde_json::json!({
        "format": FORMAT,
        "head_hash": head_hash,
        "seq": seq,
        "tenant_id": tenant_id,
        "time": time,
    });
    crate::sorted_json::encode(&content).into_bytes()
}

/// The stored signature of a DER ECDSA signature (what KMS `Sign` returns).
pub fn encode_signature(der: &[u8]) -> Result<String, KeyError> {
    let signature = Signature::from_der(der).map_err(|_| KeyError::BadDerSignature)?;
    let signature = signature.normalize_s().unwrap_or(signature);
    Ok(B64.encode(signature.to_bytes()))
}

impl SignedCheckpoint {
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.tenant_id, self.seq, &self.head_hash, &self.time)
    }

    /// The chain position it vouches for.
    pub fn position(&self) -> Checkpoint {
        Checkpoint { seq: self.seq, hash: self.head_hash.clone() }
    }

    /// Checks the signature with `key` (whose `kid` must be the checkpoint's).
    pub fn verify(&self, key: &TokenKey) -> Result<(), CheckpointError> {
        if key.kid != self.key_id {
            return Err(CheckpointError::UnknownKey);
        }
        let raw = B64.decode(&self.signature).map_err(|_| CheckpointError::Malformed)?;
        let signature = Signature::from_slice(&raw).map_err(|_| CheckpointError::Malformed)?;
        if signature.normalize_s().is_some() {
            // The high-S twin of a signature we would have written low.
            return Err(CheckpointError::BadSignature);
        }
        key.verifying_key.verify(&self.signed_bytes(), &signature).map_err(|_| CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    fn key() -> (SigningKey, TokenKey) {
        let signing = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der = signing.verifying_key().to_public_key_der().unwrap();
        (signing.clone(), TokenKey::from_spki_der("k1", der.as_bytes()).unwrap())
    }

    fn signed(signing: &SigningKey, seq: u64) -> SignedCheckpoint {
        let mut checkpoint = SignedCheckpoint {
            tenant_id: "acme".into(),
            seq,
            head_hash: "ab".repeat(32),
            time: "2026-01-01T00:00:00Z".into(),
            key_id: "k1".into(),
            signature: String::new(),
        };
        let signature: Signature = signing.sign(&checkpoint.signed_bytes());
        checkpoint.signature = encode_signature(signature.to_der().as_bytes()).unwrap();
        checkpoint
    }

    #[test]
    fn the_signed_bytes_are_the_documented_sorted_json() {
        assert_eq!(
            String::from_utf8(signed_bytes("acme", 7, "00ff", "2026-01-01T00:00:00Z")).unwrap(),
            r#"{"format":"caas.audit.checkpoint.v1","head_hash":"00ff","seq":7,"tenant_id":"acme","time":"2026-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_does_not() {
        let (signing, key) = key();
        let good = signed(&signing, 5);
        assert_eq!(good.verify(&key), Ok(()));
        let mut moved = good.clone();
        moved.seq = 4;
        assert_eq!(moved.verify(&key), Err(CheckpointError::BadSignature));
        let mut other_tenant = good.clone();
        other_tenant.tenant_id = "globex".into();
        assert_eq!(other_tenant.verify(&key), Err(CheckpointError::BadSignature));
        let mut foreign = good.clone();
        foreign.key_id = "k2".into();
        assert_eq!(foreign.verify(&key), Err(CheckpointError::UnknownKey));
        let mut garbage = good;
        garbage.signature = "not base64!".into();
        assert_eq!(garbage.verify(&key), Err(CheckpointError::Malformed));
    }
}
