//! Authentication: credentials, password hashing, lockout, access tokens
//! (ES256 via KMS), refresh-token rotation, invitation tokens, machine
//! clients' secrets and their OAuth token endpoint, the principal a token
//! stands for, and the services combining them.

pub mod client_secret;
pub mod credentials;
pub mod device_token;
pub mod envelope;
pub mod invitation_token;
pub mod jwt;
pub mod keys;
pub mod lockout;
pub mod mfa_token;
pub mod oauth;
pub mod opaque_token;
pub mod password;
pub mod principal;
pub mod recovery_code;
pub mod refresh_token;
pub mod rotation;
pub mod service;
pub mod totp;

pub use principal::{Actor, Principal, PrincipalKind, Role};
pub use service::{Authenticated, authenticate};
