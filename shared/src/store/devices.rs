//! The devices of an account (see [`crate::auth::device_token`]): a map on
//! the user item, `devices.<token hash>` = `{created_at, last_used_at,
//! failures}`, read with the user for free. A login adds and drops entries
//! path by path; a failure from a device counts on its entry.

use super::labels::AuthLabel;
use super::users::UserRecord;
use super::{Action, Expr, value};
use crate::error::AppError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Epoch seconds.
    pub created_at: i64,
    pub last_used_at: i64,
    /// Failed logins presenting this device's token since it was issued.
    #[serde(default)]
    pub failures: u32,
}

/// What a successful login does to the devices: the new device's entry, and
/// the entries it drops.
#[derive(Debug, Clone)]
pub struct DeviceChange {
    pub add: (String, DeviceRecord),
    pub drop: Vec<String>,
}

/// The parts of a user update that apply a [`DeviceChange`].
pub(super) struct Clauses {
    pub sets: Vec<String>,
    pub removes: Vec<String>,
    pub expr: Expr,
    pub condition: &'static str,
}

/// The clauses of [`DeviceChange`] for the login's user update. A user
/// stored before devices existed gets the whole map (only if it still has none).
pub(super) fn login_clauses(user: &UserRecord, change: &DeviceChange) -> Result<Clauses, AppError> {
    let (hash, device) = &change.add;
    if user.devices.is_none() {
        let map = BTreeMap::from([(hash.clone(), device.clone())]);
        return Ok(Clauses {
            sets: vec!["devices = :devices".into()],
            removes: Vec::new(),
            expr: Expr::default().value(":devices", value(map)?),
            condition: "attribute_not_exists(devices)",
        });
    }
    let mut expr = Expr::default().name("#dnew", hash).value(":dnew", value(device)?);
    let mut removes = Vec::new();
    for (n, dropped) in change.drop.iter().enumerate() {
        let name = format!("#ddrop{n}");
        expr = expr.name(&name, dropped);
        removes.push(format!("devices.{name}"));
    }
    Ok(Clauses {
        sets: vec!["devices.#dnew = :dnew".into()],
        removes,
        expr,
        condition: "attribute_exists(devices)",
    })
}

/// Counts a failed login from the device `hash` (`failures` as read →
/// `next`), or forgets the device (`next` = `None`): its token is then
/// untrusted. Conditional on the count read, so concurrent failures all count.
pub fn record_failure(
    table: &str,
    user: &UserRecord,
    hash: &str,
    read: u32,
    next: Option<u32>,
) -> Result<Action<AuthLabel>, AppError> {
    let expr = Expr::default().name("#d", hash).value(":old", value(read)?);
    let condition = "devices.#d.failures = :old";
    let key = user.key();
    match next {
        Some(count) => {
            let expr = expr.value(":next", value(count)?);
            Action::update(
                table,
                AuthLabel::User,
                key,
                "SET devices.#d.failures = :next",
                Some(condition),
                expr,
            )
        }
        None => Action::update(table, AuthLabel::User, key, "REMOVE devices.#d", Some(condition), expr),
    }
}
