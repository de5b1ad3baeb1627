//! The KMS asymmetric keys (ES256): a key's public key, and signatures of a
//! message. KMS hashes the message itself (`MessageType::Raw`, SHA-256), as
//! ES256 requires, and returns DER signatures; callers encode them.

use crate::auth::jwt::TokenKey;
use crate::error::AppError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

/// The public key of `key_id` (`GetPublicKey`), with its JWK; `what` names it in errors.
pub async fn public_key(kms: &aws_sdk_kms::Client, key_id: &str, what: &str) -> Result<TokenKey, AppError> {
    let output = kms
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| AppError::from_sdk(&format!("get {what} public key"), e))?;
    let der = output.public_key().ok_or_else(|| AppError::Internal("KMS returned no public key".into()))?;
    TokenKey::from_spki_der(key_id, der.as_ref())
        .map_err(|e| AppError::internal(&format!("{what} public key"), e))
}

/// The DER ECDSA P-256 signature of `message` (SHA-256) by `key_id`.
pub async fn sign_es256(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    message: Vec<u8>,
    what: &str,
) -> Result<Vec<u8>, AppError> {
    let signed = kms
        .sign()
        .key_id(key_id)
        .message(Blob::new(message))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .map_err(|e| AppError::from_sdk(&format!("sign {what}"), e))?;
    let der = signed.signature().ok_or_else(|| AppError::Internal("KMS returned no signature".into()))?;
    Ok(der.as_ref().to_vec())
}
