//! Validated credential inputs: normalized emails and the password policy.

use crate::error::AppError;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_EMAIL_BYTES: usize = 254;

/// An email address, lowercased (and stripped of surrounding spaces, tabs and
/// line breaks): the per-tenant identity key. ASCII only: a local part of 1
/// to 64 printable characters but `@` and `#` (the key separator), and a
/// domain of two or more labels of letters, digits and `-`; 254 bytes at most.
/// openapi.yaml's `Email` pattern states the same rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let invalid = || AppError::bad_request("email", "email: is not a valid email address");
        if raw.len() > MAX_EMAIL_BYTES {
            return Err(invalid());
        }
        let normalized = raw.trim_matches([' ', '\t', '\n', '\r']).to_ascii_lowercase();
        let (local, domain) = normalized.split_once('@').ok_or_else(invalid)?;
        let local_ok = (1..=64).contains(&local.len())
            && local.bytes().all(|b| b.is_ascii_graphic() && b != b'@' && b != b'#');
        let labels = domain.split('.').collect::<Vec<_>>();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if local_ok && domain_ok { Ok(Self(normalized)) } else { Err(invalid()) }
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
            "ada@example..com",
            "ada@b@example.com",
            "adá@example.com",
            "ada@exämple.com",
            "ada\u{1}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert_eq!(
            Email::parse("\tO'Brien+x@Mail-1.Example.org\r\n").unwrap().as_str(),
            "o'brien+x@mail-1.example.org"
        );
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
