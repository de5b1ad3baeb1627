//! Authentication: credentials, password hashing, lockout, access tokens
//! (ES256 via KMS), refresh-token rotation, and the services combining them.

pub mod credentials;
pub mod jwt;
pub mod lockout;
pub mod password;
pub mod refresh_token;
pub mod service;

pub use service::{Authenticated, authenticate};
