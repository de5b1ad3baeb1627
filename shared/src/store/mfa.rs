//! The second factor's items: the user's TOTP enrolment, a map `mfa` on the
//! user item (read with the user for free, changed by conditions on the same
//! item), and the sign-in challenges behind `mfa_token`s.
//!
//! `mfa` = `{id, status: pending|active, secret: <sealed>, created_at,
//! activated_at?, last_step?, recovery?: {<code hash>: <epoch s>}}`. `id`
//! names one secret: every change is conditional on the `id` (and status)
//! that was read, so an enrolment replaced meanwhile is never confirmed,
//! and `last_step < :step` refuses a code of a step already used.
//!
//! A challenge: pk `T#<tenant>#MFA#<token hash>`, sk `MFA`, kind
//! `mfa_challenge`, with the user it is for, its purpose (sign in, or
//! enrolment only), the trusted device of the login, the failed attempts, and
//! `expires_at` (checked in code: TTL deletion is late). It is spent by an
//! update (`used_at`), never deleted, so a replay finds it used.

use super::labels::AuthLabel;
use super::users::{UserRecord, user_key};
use super::{Action, Expr, Item, TTL_ATTRIBUTE, from_item, get, key, tenant_pk, to_item, value};
use crate::auth::envelope::Sealed;
use crate::error::AppError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaStatus {
    /// Enrolled, not confirmed by a code yet: not asked for at sign-in.
    Pending,
    Active,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRecord {
    pub id: String,
    pub status: MfaStatus,
    /// The TOTP secret, envelope-encrypted (tenant and user as context).
    pub secret: Sealed,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    /// The step of the last code accepted: only later ones are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// The unused recovery codes, by hash (value: when the set was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<BTreeMap<String, i64>>,
}

impl MfaRecord {
    pub fn is_active(&self) -> bool {
        self.status == MfaStatus::Active
    }

    pub fn recovery_left(&self) -> usize {
        self.recovery.as_ref().map_or(0, BTreeMap::len)
    }
}

/// What a sign-in's second factor spends on the user item.
#[derive(Debug, Clone)]
pub enum FactorUse {
    /// A TOTP code of `step`, of the secret `id`.
    Code { id: String, step: u64 },
    /// A recovery code (by hash) of the secret `id`.
    Recovery { id: String, hash: String },
    /// The secret `id` was just confirmed with a code (spent by that
    /// confirmation): the sign-in only needs it still active.
    Enrolled { id: String },
}

/// The parts of the login's user update that spend a [`FactorUse`].
pub(super) struct Clauses {
    pub set: Option<String>,
    pub remove: Option<String>,
    pub expr: Expr,
    pub condition: String,
}

pub(super) fn factor_clauses(factor: &FactorUse) -> Result<Clauses, AppError> {
    let expr = Expr::default().name("#mst", "status").value(":mactive", value(MfaStatus::Active)?);
    Ok(match factor {
        FactorUse::Code { id, step } => Clauses {
            set: Some("mfa.last_step = :mstep".into()),
            remove: None,
            expr: expr.value(":mid", value(id)?).value(":mstep", value(step)?),
            condition: "mfa.id = :mid AND mfa.#mst = :mactive \
                        AND (attribute_not_exists(mfa.last_step) OR mfa.last_step < :mstep)"
                .into(),
        },
        FactorUse::Recovery { id, hash } => Clauses {
            set: None,
            remove: Some("mfa.recovery.#mrc".into()),
            expr: expr.value(":mid", value(id)?).name("#mrc", hash),
            condition: "mfa.id = :mid AND mfa.#mst = :mactive AND attribute_exists(mfa.recovery.#mrc)".into(),
        },
        FactorUse::Enrolled { id } => Clauses {
            set: None,
            remove: None,
            expr: expr.value(":mid", value(id)?),
            condition: "mfa.id = :mid AND mfa.#mst = :mactive".into(),
        },
    })
}

fn mfa_expr() -> Result<Expr, AppError> {
    Ok(Expr::default()
        .name("#mst", "status")
        .value(":pending", value(MfaStatus::Pending)?)
        .value(":mactive", value(MfaStatus::Active)?))
}

/// Stores a new, pending enrolment (replacing a pending one), if the user
/// has no active second factor and is still `user_id` (label `user`).
pub fn start_enrolment(
    table: &str,
    user: &UserRecord,
    mfa: &MfaRecord,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::User,
        user.key(),
        "SET mfa = :mfa",
        Some("user_id = :uid AND (attribute_not_exists(mfa) OR mfa.#mst = :pending)"),
        mfa_expr()?.value(":mfa", value(mfa)?).value(":uid", value(&user.user_id)?),
    )
}

/// Activates the pending enrolment `id` with its first code's step and the
/// recovery codes' hashes (label `user`).
pub fn activate(
    table: &str,
    user: &UserRecord,
    id: &str,
    step: u64,
    recovery: &BTreeMap<String, i64>,
    at: i64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::User,
        user.key(),
        "SET mfa.#mst = :mactive, mfa.last_step = :step, mfa.recovery = :recovery, mfa.activated_at = :at",
        Some("mfa.id = :mid AND mfa.#mst = :pending"),
        mfa_expr()?
            .value(":mid", value(id)?)
            .value(":step", value(step)?)
            .value(":recovery", value(recovery)?)
            .value(":at", value(at)?),
    )
}

/// Replaces the recovery codes of the active secret `id` (label `user`).
pub fn replace_recovery(
    table: &str,
    user: &UserRecord,
    id: &str,
    recovery: &BTreeMap<String, i64>,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::User,
        user.key(),
        "SET mfa.recovery = :recovery",
        Some("mfa.id = :mid AND mfa.#mst = :mactive"),
        mfa_expr()?.value(":mid", value(id)?).value(":recovery", value(recovery)?),
    )
}

/// Removes the active secret `id`, spending the code of `step` that
/// authorized it (label `user`).
pub fn disable(table: &str, user: &UserRecord, id: &str, step: u64) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::User,
        user.key(),
        "REMOVE mfa",
        Some(
            "mfa.id = :mid AND mfa.#mst = :mactive \
             AND (attribute_not_exists(mfa.last_step) OR mfa.last_step < :step)",
        ),
        mfa_expr()?.value(":mid", value(id)?).value(":step", value(step)?),
    )
}

/// An administrator's reset: removes whatever second factor (pending or
/// active) the user `user_id` (its item's key name) has, if any (label `user`). `not_owner`: only if the user
/// is not an owner (an admin's reset).
pub fn reset(
    table: &str,
    tenant: &str,
    key_name: &str,
    user_id: &str,
    not_owner: bool,
) -> Result<Action<AuthLabel>, AppError> {
    let mut expr = Expr::default().value(":uid", value(user_id)?);
    // Idempotent: a user without a second factor stays so.
    let mut condition = "user_id = :uid".to_owned();
    if not_owner {
        expr = expr.name("#role", "role").value(":owner", value(crate::auth::Role::Owner)?);
        condition.push_str(" AND #role <> :owner");
    }
    Action::update(table, AuthLabel::User, user_key(tenant, key_name), "REMOVE mfa", Some(&condition), expr)
}

// ------------------------------------------------------------------ challenges

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengePurpose {
    /// The password was right; the second factor opens the session.
    SignIn,
    /// The tenant requires a second factor the user has not enrolled: the
    /// token allows enrolment (and its confirmation opens the session).
    Enrolment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    pub tenant_id: String,
    pub user_id: String,
    /// The key name of the user item (its email lookup hash; the email of a
    /// user not yet migrated, which challenges issued before read as).
    #[serde(alias = "email")]
    pub user_key: String,
    pub purpose: ChallengePurpose,
    /// The trusted device the login presented (its token hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    pub created_at: i64,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<i64>,
}

impl ChallengeRecord {
    /// Unused, unexpired, with attempts left.
    pub fn is_live(&self, now: i64, max_attempts: u32) -> bool {
        self.used_at.is_none() && self.expires_at > now && self.attempts < max_attempts
    }
}

fn challenge_key(tenant: &str, hash: &str) -> Item {
    key(tenant_pk(tenant, &format!("MFA#{hash}")), "MFA")
}

#[derive(Serialize)]
struct ChallengeItem<'a> {
    pk: String,
    sk: &'static str,
    kind: &'static str,
    schema_version: u32,
    #[serde(flatten)]
    record: &'a ChallengeRecord,
}

/// Stores a new challenge (one conditional put).
pub async fn insert_challenge(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    hash: &str,
    challenge: &ChallengeRecord,
) -> Result<(), AppError> {
    let item = to_item(&ChallengeItem {
        pk: tenant_pk(&challenge.tenant_id, &format!("MFA#{hash}")),
        sk: "MFA",
        kind: "mfa_challenge",
        schema_version: 1,
        record: challenge,
    })?;
    debug_assert!(item.contains_key(TTL_ATTRIBUTE));
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| AppError::from_sdk("store an mfa challenge", e))?;
    Ok(())
}

pub async fn find_challenge(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    hash: &str,
) -> Result<Option<ChallengeRecord>, AppError> {
    get(dynamodb, table, challenge_key(tenant, hash)).await?.map(from_item).transpose()
}

fn challenge_expr(read: &ChallengeRecord, now: i64) -> Result<Expr, AppError> {
    Ok(Expr::default()
        .name("#ttl", TTL_ATTRIBUTE)
        .value(":attempts", value(read.attempts)?)
        .value(":now", value(now)?))
}

const CHALLENGE_AS_READ: &str = "attribute_not_exists(used_at) AND attempts = :attempts AND #ttl > :now";

/// Spends the challenge, as read (label `challenge`).
pub fn spend_challenge(
    table: &str,
    hash: &str,
    read: &ChallengeRecord,
    now: i64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Challenge,
        challenge_key(&read.tenant_id, hash),
        "SET used_at = :now",
        Some(CHALLENGE_AS_READ),
        challenge_expr(read, now)?,
    )
}

/// Counts a failed attempt on the challenge, as read (label `challenge`).
pub fn count_failure(
    table: &str,
    hash: &str,
    read: &ChallengeRecord,
    now: i64,
) -> Result<Action<AuthLabel>, AppError> {
    Action::update(
        table,
        AuthLabel::Challenge,
        challenge_key(&read.tenant_id, hash),
        "SET attempts = attempts + :one",
        Some(CHALLENGE_AS_READ),
        challenge_expr(read, now)?.value(":one", value(1u32)?),
    )
}
