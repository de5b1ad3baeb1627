//! The published signing keys: the current one and, after a rotation, the
//! previous one, until the operator retires it (see `docs/RUNBOOK.md`,
//! signing-key rotation, and [`super::rotation`]).
//!
//! Both are found through KMS aliases: tokens are signed with the current
//! alias (`TOKEN_SIGNING_KEY_ALIAS`), and the public keys of the current and
//! the previous alias (`TOKEN_PREVIOUS_KEY_ALIAS`) are the JWKS and the keys
//! a token's `kid` is looked up among. A container keeps the set for
//! [`CACHE_SECONDS`] (on the app's clock) and fetches it again early, at most
//! every [`REFETCH_SECONDS`], when a token names a key it does not know: a
//! new key is accepted within moments of a rotation, a retired one is refused
//! once the cache ran out.

use super::jwt::TokenKey;
use crate::app::App;
use crate::error::AppError;
use aws_sdk_kms::operation::get_public_key::GetPublicKeyError;
use std::sync::{Arc, Mutex};

/// How long a container keeps the key set.
pub const CACHE_SECONDS: i64 = 300;
/// The shortest time between two fetches caused by unknown key ids.
const REFETCH_SECONDS: i64 = 5;

/// The published keys, the current one first.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub keys: Vec<TokenKey>,
    fetched_at: i64,
}

impl KeySet {
    pub fn current(&self) -> Option<&TokenKey> {
        self.keys.first()
    }

    pub fn find(&self, kid: &str) -> Option<&TokenKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }
}

/// A container's key set and the key id it signs with.
#[derive(Debug, Default)]
pub struct KeyCache {
    set: tokio::sync::Mutex<Option<Arc<KeySet>>>,
    /// The kid of the key the signing alias pointed at last; the configured
    /// key id until a signature tells otherwise.
    signing_kid: Mutex<Option<String>>,
}

/// The KMS key id in a key id or key ARN (`arn:...:key/<id>`).
pub fn key_id_of(id_or_arn: &str) -> &str {
    id_or_arn.rsplit_once(":key/").map_or(id_or_arn, |(_, id)| id)
}

impl KeyCache {
    /// The kid to put in the next token's header.
    pub(crate) fn signing_kid(&self, app: &App) -> Result<String, AppError> {
        let known = self.signing_kid.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match known {
            Some(kid) => Ok(kid),
            None => Ok(key_id_of(app.config.token_signing_key_id()?).to_owned()),
        }
    }

    /// Remembers which key the signing alias points at now.
    pub(crate) fn signed_with(&self, kid: &str) {
        *self.signing_kid.lock().unwrap_or_else(|p| p.into_inner()) = Some(kid.to_owned());
    }
}

/// The published keys, from the cache while it is fresh; `unknown_kid` asks
/// for a fetch if the cached set was fetched more than [`REFETCH_SECONDS`] ago.
pub async fn published(app: &App, unknown_kid: bool) -> Result<Arc<KeySet>, AppError> {
    let now = app.now().unix_timestamp();
    let mut cached = app.token_keys.set.lock().await;
    if let Some(set) = cached.as_ref() {
        let age = now - set.fetched_at;
        let fresh = age < CACHE_SECONDS && !(unknown_kid && age >= REFETCH_SECONDS);
        if fresh {
            return Ok(set.clone());
        }
    }
    let set = Arc::new(fetch(app, now).await?);
    *cached = Some(set.clone());
    Ok(set)
}

async fn fetch(app: &App, now: i64) -> Result<KeySet, AppError> {
    let current = public_key(app, app.config.token_signing_reference()?)
        .await?
        .ok_or_else(|| AppError::Internal("the token signing key does not exist".into()))?;
    let mut keys = vec![current];
    let previous = match app.config.token_previous_key_alias.as_deref() {
        Some(alias) => public_key(app, alias).await?,
        None => None,
    };
    keys.extend(previous.filter(|key| key.kid != keys[0].kid));
    Ok(KeySet { keys, fetched_at: now })
}

/// The public key `reference` (a key id, ARN or alias) names; `None` when
/// there is no such key or alias (the previous alias between rotations).
async fn public_key(app: &App, reference: &str) -> Result<Option<TokenKey>, AppError> {
    let output = match app.clients.kms.get_public_key().key_id(reference).send().await {
        Ok(output) => output,
        Err(error) if matches!(error.as_service_error(), Some(GetPublicKeyError::NotFoundException(_))) => {
            return Ok(None);
        }
        Err(error) => return Err(AppError::from_sdk("get token public key", error)),
    };
    let kid =
        output.key_id().map(key_id_of).ok_or_else(|| AppError::Internal("KMS returned no key id".into()))?;
    let der = output.public_key().ok_or_else(|| AppError::Internal("KMS returned no public key".into()))?;
    TokenKey::from_spki_der(kid, der.as_ref())
        .map(Some)
        .map_err(|e| AppError::internal("token public key", e))
}
