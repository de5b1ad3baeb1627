//! Validated credential inputs: normalized emails and the password policy.

use crate::error::AppError;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_EMAIL_BYTES: usize = 254;

/// An email address, normalized: the per-tenant identity key. Stripped of
/// surrounding spaces, tabs and line breaks, Unicode NFC, lowercased; the
/// domain in its IDNA ASCII form (UTS 46, so `bücher.example` and
/// `xn--bcher-kva.example` are one domain). A local part of 1 to 64 bytes of
/// printable ASCII but `@` and `#` (the key separator) or non-ASCII letters
/// and digits, and a domain of two or more labels of letters, digits and `-`;
/// 254 bytes at most. Format characters (zero-width, bidi controls) are
/// refused: they make addresses that look alike but differ. openapi.yaml's
/// `Email` pattern states a subset of this rule (Latin-1 letters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// Unicode format characters (category Cf) and other invisible code points.
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        use unicode_normalization::UnicodeNormalization;
        let invalid = || AppError::bad_request("email", "email: is not a valid email address");
        if raw.len() > 4 * MAX_EMAIL_BYTES || raw.chars().any(is_format_character) {
            return Err(invalid());
        }
        let composed: String =
            raw.trim_matches([' ', '\t', '\n', '\r']).nfc().collect::<String>().to_lowercase();
        let (local, domain) = composed.split_once('@').ok_or_else(invalid)?;
        let label_ok =
            |label: &str| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        let labels = domain.split('.').collect::<Vec<_>>();
        if labels.len() < 2 || !labels.iter().all(|label| label_ok(label)) {
            return Err(invalid());
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
        let normalized = format!("{local}@{domain}");
        if normalized.len() > MAX_EMAIL_BYTES {
            return Err(invalid());
        }
        let domain_ok = domain
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let local_ok = (1..=64).contains(&local.len())
            && local.chars().all(|c| match c.is_ascii() {
                true => c.is_ascii_graphic() && c != '@' && c != '#',
                false => c.is_alphanumeric(),
            });
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
            "ada@example..com",
            "ada@b@example.com",
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
    fn emails_are_nfc_with_an_idna_domain_and_no_format_characters() {
        let composed = Email::parse("Ren\u{e9}@B\u{fc}cher.Example").unwrap();
        assert_eq!(composed.as_str(), "ren\u{e9}@xn--bcher-kva.example");
        assert_eq!(
            Email::parse("rene\u{301}@bu\u{308}cher.example").unwrap(),
            composed,
            "NFD is the same address"
        );
        assert_eq!(Email::parse("ren\u{e9}@xn--bcher-kva.example").unwrap(), composed, "the ASCII form too");
        for bad in [
            "ada\u{200B}@example.com",
            "ada@exam\u{200D}ple.com",
            "\u{202E}moc.elpmaxe@ada",
            "ada@example.com\u{2066}",
            "\u{FEFF}ada@example.com",
            "ada@xn--.example",
            "ada@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
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
