//! Device tokens (OWASP "device cookies"): a successful login hands the
//! client a token bound to the account; a later attempt that presents it is
//! from a device that has signed in before, and is not subject to the
//! account's lockout of untrusted clients, only to the device's own failure
//! count. Opaque like refresh tokens (256 random bits, tenant-prefixed);
//! only the SHA-256 is stored, on the user item it is bound to.

use super::opaque_token;
use crate::store::users::UserRecord;
use crate::tenant::TenantId;

const PREFIX: &str = "dv1";
/// How many devices an account remembers; a new one replaces the least recently used.
pub const MAX_DEVICES: usize = 10;
/// How long a device stays trusted without a successful login from it.
pub const TTL_SECONDS: i64 = 180 * 86_400;

/// A new token and the hash to store.
pub fn generate(tenant: &TenantId) -> (String, String) {
    opaque_token::generate(PREFIX, tenant)
}

/// The stored hash of `presented` when it is a live device token of `user`.
pub fn trusted(user: &UserRecord, presented: Option<&str>, now: i64) -> Option<String> {
    let (tenant, hash) = opaque_token::parse(PREFIX, presented?)?;
    if tenant.as_str() != user.tenant_id {
        return None;
    }
    let device = user.devices.as_ref()?.get(&hash)?;
    (device.last_used_at + TTL_SECONDS > now).then_some(hash)
}

/// The devices a successful login drops: the one presented (it gets a new
/// token), expired ones, and the least recently used beyond the maximum.
pub fn dropped_on_login(user: &UserRecord, presented: Option<&str>, now: i64) -> Vec<String> {
    let Some(devices) = user.devices.as_ref() else { return Vec::new() };
    let mut kept: Vec<(&String, i64)> = Vec::new();
    let mut dropped = Vec::new();
    for (hash, device) in devices {
        if Some(hash.as_str()) == presented || device.last_used_at + TTL_SECONDS <= now {
            dropped.push(hash.clone());
        } else {
            kept.push((hash, device.last_used_at));
        }
    }
    kept.sort_by_key(|(_, used)| *used);
    let excess = (kept.len() + 1).saturating_sub(MAX_DEVICES);
    dropped.extend(kept.into_iter().take(excess).map(|(hash, _)| hash.clone()));
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::devices::DeviceRecord;

    fn user(devices: &[(&str, i64)]) -> UserRecord {
        let mut user: UserRecord = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme", "user_id": "u", "email": "a@example.com",
            "password_hash": "x", "created_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        user.devices = Some(
            devices
                .iter()
                .map(|(hash, used)| {
                    ((*hash).to_owned(), DeviceRecord { created_at: 0, last_used_at: *used, failures: 0 })
                })
                .collect(),
        );
        user
    }

    #[test]
    fn only_live_tokens_of_the_account_are_trusted() {
        let tenant = TenantId::parse("acme").unwrap();
        let (token, hash) = generate(&tenant);
        let mut ada = user(&[]);
        ada.devices
            .get_or_insert_default()
            .insert(hash.clone(), DeviceRecord { created_at: 0, last_used_at: 100, failures: 0 });
        assert_eq!(trusted(&ada, Some(&token), 200), Some(hash));
        assert_eq!(trusted(&ada, Some(&token), 100 + TTL_SECONDS), None, "expired");
        assert_eq!(trusted(&user(&[]), Some(&token), 200), None, "another account");
        let (other, _) = generate(&TenantId::parse("globex").unwrap());
        assert_eq!(trusted(&ada, Some(&other), 200), None);
        assert_eq!(trusted(&ada, Some("garbage"), 200), None);
        assert_eq!(trusted(&ada, None, 200), None);
    }

    #[test]
    fn a_login_drops_the_presented_the_expired_and_the_least_recent_beyond_the_maximum() {
        let hashes: Vec<String> = (0..MAX_DEVICES).map(|n| format!("h{n:02}")).collect();
        let devices: Vec<(&str, i64)> = hashes.iter().map(|h| (h.as_str(), 1_000)).collect();
        let mut full = user(&devices);
        full.devices.get_or_insert_default().get_mut("h03").unwrap().last_used_at = 10;
        assert_eq!(dropped_on_login(&full, None, 2_000), ["h03"]);
        assert_eq!(dropped_on_login(&full, Some("h05"), 2_000), ["h05"]);
        let stale = user(&[("old", 0), ("new", TTL_SECONDS)]);
        assert_eq!(dropped_on_login(&stale, None, TTL_SECONDS + 1), ["old"]);
    }
}
