//! Validated credential inputs: normalized emails and the password policy.

use crate::error::AppError;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_EMAIL_BYTES: usize = 254;

/// An email address, trimmed and lowercased: the per-tenant identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let normalized = raw.trim().to_lowercase();
        let invalid = || AppError::bad_request("email", "email: is not a valid email address");
        if normalized.is_empty() || normalized.len() > MAX_EMAIL_BYTES {
            return Err(invalid());
        }
        let (local, domain) = normalized.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-'));
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#');
        if domain_ok && local_ok { Ok(Self(normalized)) } else { Err(invalid()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the policy for a new password (registration).
pub fn check_new_password(password: &str) -> Result<(), AppError> {
    check_password_size(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::bad_request(
            "password",
            format!("password: must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Bounds any presented password (login too) so hashing cost stays bounded.
pub fn check_password_size(password: &str) -> Result<(), AppError> {
    if password.is_empty() {
        return Err(AppError::bad_request("password", "password: is required"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::bad_request(
            "password",
            format!("password: must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_validated() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@exa mple.com",
            "a#b@example.com",
            "ada@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_policy_bounds_length() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("twelve chars").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        // 12 characters but 24 bytes: the minimum counts characters.
        assert!(check_new_password("éééééééééééé").is_ok());
    }
}
