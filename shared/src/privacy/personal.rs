//! Personal data, encrypted per person. Each user has one AES-256 data key
//! ([`crate::store::user_keys`]: from KMS `GenerateDataKey` under the
//! DataKey, encryption context `{tenant, user}`, only the wrapped key
//! stored). Every personal field is sealed with it (AES-256-GCM, a random
//! 96-bit nonce, the tenant, the user and the field's name as associated
//! data, so a sealed value cannot be moved to another user or field) and
//! stored as `v1.<base64 nonce ‖ ciphertext ‖ tag>`. Only what shows a
//! field opens it (one KMS `Decrypt` of the user's key); login finds the
//! user by the email's keyed hash ([`super::lookup`]) and opens nothing.
//!
//! Erasure deletes the key item: every sealed copy (the user item, the
//! directory entry, backups of either) stays as ciphertext nobody can open.

use crate::app::App;
use crate::auth::envelope::{new_data_key, open_bytes, seal_bytes, unwrap_data_key};
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::store::user_keys::{self, UserKeyRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The field names sealed values are bound to.
pub const EMAIL: &str = "email";
pub const DISPLAY_NAME: &str = "display_name";

const PREFIX: &str = "v1.";

/// A user's data key, unwrapped.
pub struct PersonalKey {
    tenant: String,
    user_id: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for PersonalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalKey").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl PersonalKey {
    fn aad(&self, field: &str) -> Vec<u8> {
        format!("caas personal\n{}\n{}\n{field}", self.tenant, self.user_id).into_bytes()
    }

    /// `value` sealed for `field` of this user.
    pub fn seal(&self, field: &str, value: &str) -> Result<String, AppError> {
        let (nonce, ciphertext) = seal_bytes(&self.key, &self.aad(field), value.as_bytes())?;
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Ok(format!("{PREFIX}{}", B64.encode(bytes)))
    }

    /// The value [`Self::seal`] sealed for `field` of this user.
    pub fn open(&self, field: &str, sealed: &str) -> Result<String, AppError> {
        let bad = || AppError::Internal("a sealed personal field is malformed".into());
        let bytes = sealed.strip_prefix(PREFIX).and_then(|b| B64.decode(b).ok()).ok_or_else(bad)?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = open_bytes(&self.key, &self.aad(field), nonce, ciphertext)?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// A new user's key: the item to store (in the registration's transaction)
/// and the key to seal their fields with.
pub async fn new_key(
    app: &App,
    tenant: &str,
    user_id: &str,
) -> Result<(PersonalKey, UserKeyRecord), AppError> {
    let (key, wrapped) = new_data_key(app, tenant, user_id).await?;
    let record = UserKeyRecord {
        tenant_id: tenant.to_owned(),
        user_id: user_id.to_owned(),
        wrapped_key: B64.encode(wrapped),
        created_at: rfc3339(app.now()),
    };
    Ok((PersonalKey { tenant: tenant.to_owned(), user_id: user_id.to_owned(), key }, record))
}

/// Unwraps a stored key (one KMS `Decrypt`).
pub async fn unwrap(app: &App, record: &UserKeyRecord) -> Result<PersonalKey, AppError> {
    let wrapped =
        B64.decode(&record.wrapped_key).map_err(|e| AppError::internal("a stored personal-data key", e))?;
    let key = unwrap_data_key(app, &record.tenant_id, &record.user_id, &wrapped).await?;
    Ok(PersonalKey { tenant: record.tenant_id.clone(), user_id: record.user_id.clone(), key })
}

/// The user's key (a read and a `Decrypt`); `None` when the user has none:
/// erased, or not given one yet by the migration.
pub async fn key_of(app: &App, tenant: &str, user_id: &str) -> Result<Option<PersonalKey>, AppError> {
    let table = &app.config.table_name;
    match user_keys::find(&app.clients.dynamodb, table, tenant, user_id).await? {
        Some(record) => Ok(Some(unwrap(app, &record).await?)),
        None => Ok(None),
    }
}

/// The user's key, created if they have none (the migration of users
/// registered before personal data was sealed; concurrent callers agree on
/// the first one stored).
pub async fn key_or_new(app: &App, tenant: &str, user_id: &str) -> Result<PersonalKey, AppError> {
    if let Some(key) = key_of(app, tenant, user_id).await? {
        return Ok(key);
    }
    let (key, record) = new_key(app, tenant, user_id).await?;
    if user_keys::put_new(&app.clients.dynamodb, &app.config.table_name, &record).await? {
        return Ok(key);
    }
    key_of(app, tenant, user_id)
        .await?
        .ok_or_else(|| AppError::Unavailable("a personal-data key was created and removed meanwhile".into()))
}

/// The emails of directory entries as shown to administrators, in order: one
/// read of all their keys, one KMS `Decrypt` per sealed email; `None` for
/// an erased person's.
pub async fn shown_emails(
    app: &App,
    tenant: &str,
    members: &[crate::store::members::MemberRecord],
) -> Result<Vec<Option<String>>, AppError> {
    use futures::StreamExt;
    let sealed: Vec<&str> = members
        .iter()
        .filter(|m| m.email.is_none() && m.email_sealed.is_some())
        .map(|m| m.user_id.as_str())
        .collect();
    let records =
        user_keys::find_many(&app.clients.dynamodb, &app.config.table_name, tenant, &sealed).await?;
    let keys: Vec<Result<Option<PersonalKey>, AppError>> = futures::stream::iter(records)
        .map(|record| async move {
            match record {
                Some(record) => unwrap(app, &record).await.map(Some),
                None => Ok(None),
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut keys = sealed.into_iter().zip(keys).collect::<std::collections::HashMap<_, _>>();
    members
        .iter()
        .map(|member| {
            if let Some(plain) = &member.email {
                return Ok(Some(plain.clone()));
            }
            match (keys.remove(member.user_id.as_str()).transpose()?.flatten(), &member.email_sealed) {
                (Some(key), Some(sealed)) => key.open(EMAIL, sealed).map(Some),
                _ => Ok(None),
            }
        })
        .collect()
}

/// A shown field: its plaintext (items not yet migrated), or its sealed
/// value opened with the user's key. `None` when neither can be had (the
/// user is erased).
pub async fn shown(
    app: &App,
    tenant: &str,
    user_id: &str,
    field: &str,
    plain: Option<&str>,
    sealed: Option<&str>,
) -> Result<Option<String>, AppError> {
    if let Some(plain) = plain {
        return Ok(Some(plain.to_owned()));
    }
    let Some(sealed) = sealed else { return Ok(None) };
    match key_of(app, tenant, user_id).await? {
        Some(key) => key.open(field, sealed).map(Some),
        None => Ok(None),
    }
}

/// The `prepare` step of the email migrations: up, a plaintext email not
/// yet sealed gets its lookup hash and its sealed value (the user's key made
/// if they have none); down, a sealed email without its plaintext gets the
/// plaintext back (opened). A dry run computes nothing (placeholders).
pub fn prepare_email<'a>(
    app: &'a App,
    direction: crate::migrate::Direction,
    dry_run: bool,
    item: &'a crate::store::Item,
) -> futures::future::BoxFuture<'a, Result<crate::store::Item, AppError>> {
    Box::pin(async move {
        use crate::store::user_layouts::{email_fields, plaintext_field, sealed_fields};
        let Some(fields) = email_fields(item) else { return Ok(Default::default()) };
        match (direction, fields.email, fields.sealed) {
            (crate::migrate::Direction::Up, Some(email), None) => {
                if dry_run {
                    return Ok(sealed_fields("0".repeat(64), format!("{PREFIX}dry-run")));
                }
                let key = key_or_new(app, &fields.tenant_id, &fields.user_id).await?;
                let lookup = super::lookup::key(app).await?.email(&fields.tenant_id, &email);
                Ok(sealed_fields(lookup, key.seal(EMAIL, &email)?))
            }
            (crate::migrate::Direction::Down, None, Some(sealed)) => {
                if dry_run {
                    return Ok(plaintext_field("dry-run@invalid".into()));
                }
                match key_of(app, &fields.tenant_id, &fields.user_id).await? {
                    Some(key) => Ok(plaintext_field(key.open(EMAIL, &sealed)?)),
                    // Erased: nothing to open; the transform refuses the item.
                    None => Ok(Default::default()),
                }
            }
            _ => Ok(Default::default()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> PersonalKey {
        PersonalKey { tenant: "acme".into(), user_id: user.into(), key: vec![9; 32] }
    }

    #[test]
    fn sealed_fields_open_only_for_their_user_and_field() {
        let sealed = key("u1").seal(EMAIL, "ada@example.com").unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("ada"));
        assert_eq!(key("u1").open(EMAIL, &sealed).unwrap(), "ada@example.com");
        assert!(key("u2").open(EMAIL, &sealed).is_err());
        assert!(key("u1").open("name", &sealed).is_err());
        assert!(key("u1").open(EMAIL, "v1.AAAA").is_err());
        assert_ne!(sealed, key("u1").seal(EMAIL, "ada@example.com").unwrap());
    }
}
