//! Authentication: credentials, password hashing, lockout, access tokens
//! (ES256 via KMS), refresh-token rotation, invitation tokens, the principal
//! a token stands for, and the services combining them.

pub mod credentials;
pub mod device_token;
pub mod envelope;
pub mod invitation_token;
pub mod jwt;
pub mod keys;
pub mod lockout;
pub mod opaque_token;
pub mod password;
pub mod principal;
pub mod refresh_token;
pub mod rotation;
pub mod service;
pub mod totp;

pub use principal::{Actor, Principal, PrincipalKind, Role};
pub use service::{Authenticated, authenticate};
