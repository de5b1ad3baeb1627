//! The auth services behind register, login, refresh, logout and jwks, and
//! the bearer-token check every authenticated function uses.
//!
//! Round trips: open registration one transaction, registration with an
//! invitation one GetItem (the invitation, for its role) and one transaction;
//! login one GetItem, one transaction, one KMS Sign; refresh the same. The
//! tenant's status, the invitation's validity and the user's session epoch
//! are conditions inside those transactions, never reads of their own.
//!
//! - [`register`]: registration, open or by invitation;
//! - [`login`]: password login, the lockout counters, the first session;
//! - [`refresh`]: refresh-token rotation, reuse detection, logout;
//! - [`tokens`]: access tokens (KMS-signed), the JWKS, the bearer check.

mod account;
mod failures;
mod login;
mod password_change;
mod refresh;
mod register;
mod second_factor;
mod tokens;

pub use account::{SessionList, SessionView, list_sessions, logout_all, revoke_session};
pub use login::{LoginOutcome, MfaChallenge, login, user_by_email};
pub use password_change::{PasswordChange, change_password};
pub use refresh::{logout, refresh};
pub use register::register;
pub(crate) use register::tenant_refusal;
pub use second_factor::{
    Confirmed, Disable, Enrolment, MfaSignIn, RecoveryCodes, TotpCode, complete_sign_in, confirm_totp,
    disable_totp, enrol_totp, regenerate_recovery_codes, reset_mfa,
};
pub use tokens::{
    authenticate, authenticate_token, issue_access_token, issue_session_token, jwks, token_key,
};

use super::credentials::{Email, check_new_password, check_password_size};
use super::jwt::{self, AccessClaims, Expected, TokenKey};
use super::lockout::{Attempts, FailureOutcome};
use super::password::{self, Verdict};
use super::principal::{Actor, Principal, PrincipalKind, Role};
use super::{invitation_token, mfa_token, refresh_token};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::outbox::OutboxEvent;
use crate::store::invitations::{self, InvitationRecord};
use crate::store::labels::AuthLabel;
use crate::store::members::{self, MemberRecord};
use crate::store::mfa::{self, ChallengeRecord};
use crate::store::sessions::{self, RefreshTokenRecord, SessionRecord, TokenStatus};
use crate::store::tenants::{self, TenantStatus};
use crate::store::tx::{Failure, Tx};
use crate::store::users::{self, UserRecord, UserStatus};
use crate::tenant::TenantId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

const INVALID_CREDENTIALS: &str = "invalid email or password";
/// The one answer for every registration the tenant does not admit.
pub const REGISTRATION_REFUSED: &str =
    "registration needs a valid invitation for this email, or a tenant open to signup";
pub(crate) const TENANT_SUSPENDED: &str = "the tenant is suspended";
pub(crate) const TENANT_INACTIVE: &str = "the tenant is not active";
const USER_DISABLED: &str = "the user is disabled";
const INVALID_REFRESH_TOKEN: &str = "invalid refresh token";
const MAX_REFRESH_TOKEN_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub tenant_id: String,
    pub email: String,
    pub password: String,
    /// The device token a previous login on this device returned.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// `POST /v1/users`: the credentials, and the invitation when the tenant
/// is invite-only (or to join with the invitation's role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub tenant_id: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub invitation: Option<String>,
    /// How the person is shown to the tenant's people (the directory
    /// search); sealed like the email.
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegisteredUser {
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    /// From a sign-in: this device's token for the next login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// A verified bearer: the tenant every data access of the request is scoped
/// to, and the principal with its roles. `tenant` and `user_id` are the
/// principal's tenant and id, kept for the callers that predate it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: TenantId,
    pub user_id: String,
    pub claims: AccessClaims,
    pub principal: Principal,
}

fn tenant_of(raw: &str) -> Result<TenantId, AppError> {
    TenantId::parse(raw).map_err(|e| AppError::bad_request("tenant_id", format!("tenant_id: {e}")))
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::internal("blocking task", e))
}
