//! Envelope encryption of small secrets (the TOTP secrets): a fresh KMS data
//! key per secret (`GenerateDataKey`, AES-256), the secret sealed with it
//! (AES-256-GCM, random 96-bit nonce), and only the data key's KMS
//! ciphertext kept beside the sealed secret. The encryption context (tenant
//! and user) binds the data key to its owner: KMS decrypts it for that
//! tenant and user only, and the same pair is the GCM associated data.

use crate::app::App;
use crate::error::AppError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::TryRng;
use serde::{Deserialize, Serialize};

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The data key, encrypted by the KMS key (base64).
    pub wrapped_key: String,
    pub nonce: String,
    pub ciphertext: String,
}

fn context(tenant: &str, user_id: &str) -> [(&'static str, String); 2] {
    [("tenant", tenant.to_owned()), ("user", user_id.to_owned())]
}

fn aad(tenant: &str, user_id: &str) -> Vec<u8> {
    format!("caas totp\n{tenant}\n{user_id}").into_bytes()
}

pub async fn seal(app: &App, tenant: &str, user_id: &str, secret: &[u8]) -> Result<Sealed, AppError> {
    let (plain, wrapped) = new_data_key(app, tenant, user_id).await?;
    let (nonce, ciphertext) = seal_bytes(&plain, &aad(tenant, user_id), secret)?;
    Ok(Sealed {
        wrapped_key: B64.encode(wrapped),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    })
}

pub async fn open(app: &App, tenant: &str, user_id: &str, sealed: &Sealed) -> Result<Vec<u8>, AppError> {
    let decode = |text: &str| B64.decode(text).map_err(|e| AppError::internal("sealed secret", e));
    let plain = unwrap_data_key(app, tenant, user_id, &decode(&sealed.wrapped_key)?).await?;
    open_bytes(&plain, &aad(tenant, user_id), &decode(&sealed.nonce)?, &decode(&sealed.ciphertext)?)
}

fn data_key_id(app: &App) -> Result<&str, AppError> {
    Ok(app.config.data_key_id.as_deref().ok_or(crate::config::ConfigError::Missing("DATA_KEY_ID"))?)
}

/// A fresh AES-256 data key for `tenant` and `user_id` (`GenerateDataKey`
/// with them as the encryption context): the plaintext and the wrapped key.
pub(crate) async fn new_data_key(
    app: &App,
    tenant: &str,
    user_id: &str,
) -> Result<(Vec<u8>, Vec<u8>), AppError> {
    let mut request =
        app.clients.kms.generate_data_key().key_id(data_key_id(app)?).key_spec(DataKeySpec::Aes256);
    for (name, value) in context(tenant, user_id) {
        request = request.encryption_context(name, value);
    }
    let output = request.send().await.map_err(|e| AppError::from_sdk("generate a data key", e))?;
    let (Some(plain), Some(wrapped)) = (output.plaintext(), output.ciphertext_blob()) else {
        return Err(AppError::Internal("KMS returned no data key".into()));
    };
    Ok((plain.as_ref().to_vec(), wrapped.as_ref().to_vec()))
}

/// The plaintext of a wrapped data key of `tenant` and `user_id` (`Decrypt`
/// with the same encryption context; another owner's key is refused).
pub(crate) async fn unwrap_data_key(
    app: &App,
    tenant: &str,
    user_id: &str,
    wrapped: &[u8],
) -> Result<Vec<u8>, AppError> {
    // The key is named, so a ciphertext of another key is refused, not decrypted.
    let mut request =
        app.clients.kms.decrypt().key_id(data_key_id(app)?).ciphertext_blob(Blob::new(wrapped.to_vec()));
    for (name, value) in context(tenant, user_id) {
        request = request.encryption_context(name, value);
    }
    let output = request.send().await.map_err(|e| AppError::from_sdk("decrypt a data key", e))?;
    let plain = output.plaintext().ok_or_else(|| AppError::Internal("KMS returned no data key".into()))?;
    Ok(plain.as_ref().to_vec())
}

/// AES-256-GCM with a random 96-bit nonce: `(nonce, ciphertext ‖ tag)`.
pub(crate) fn seal_bytes(key: &[u8], aad: &[u8], msg: &[u8]) -> Result<([u8; 12], Vec<u8>), AppError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| AppError::internal("data key", e))?;
    let mut nonce = [0u8; 12];
    rand::rngs::SysRng.try_fill_bytes(&mut nonce).expect("the operating system's random source");
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .map_err(|_| AppError::Internal("seal a secret".into()))?;
    Ok((nonce, ciphertext))
}

/// Opens what [`seal_bytes`] sealed with the same key and associated data.
pub(crate) fn open_bytes(
    key: &[u8],
    aad: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, AppError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| AppError::internal("data key", e))?;
    if nonce.len() != 12 {
        return Err(AppError::Internal("sealed secret: bad nonce".into()));
    }
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map_err(|_| AppError::Internal("open a sealed secret".into()))
}
