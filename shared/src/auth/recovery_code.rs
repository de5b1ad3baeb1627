//! Recovery codes of the second factor: ten at a time, each 60 random bits
//! written as three groups of four base32 characters (`ABCD-EFGH-JKLM`),
//! shown once, stored only as SHA-256 hashes, each usable once. Presented
//! codes are compared case-insensitively, without spaces or dashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::TryRng;
use sha2::{Digest, Sha256};

pub const COUNT: usize = 10;
const GROUPS: usize = 3;
const GROUP_CHARS: usize = 4;
const MAX_PRESENTED_BYTES: usize = 64;

/// `COUNT` new codes.
pub fn generate() -> Vec<String> {
    (0..COUNT).map(|_| one()).collect()
}

fn one() -> String {
    let mut bytes = [0u8; 10];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random source");
    let symbols = super::totp::base32(&bytes);
    let symbols = &symbols[..GROUPS * GROUP_CHARS];
    let groups: Vec<&str> = (0..GROUPS).map(|g| &symbols[g * GROUP_CHARS..(g + 1) * GROUP_CHARS]).collect();
    groups.join("-")
}

/// The stored form of a code, or `None` if `presented` cannot be one.
pub fn hash(presented: &str) -> Option<String> {
    if presented.len() > MAX_PRESENTED_BYTES {
        return None;
    }
    let canonical: String = presented
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = canonical.len() == GROUPS * GROUP_CHARS
        && canonical.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    valid.then(|| B64.encode(Sha256::digest(format!("caas recovery\n{canonical}").as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_hash_in_any_spelling() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        let code = &codes[0];
        assert_eq!(code.len(), 14);
        let stored = hash(code).unwrap();
        assert_eq!(hash(&code.to_lowercase()), Some(stored.clone()));
        assert_eq!(hash(&code.replace('-', " ")), Some(stored.clone()));
        assert_ne!(hash(&codes[1]), Some(stored));
        for bad in ["", "ABCD-EFGH", "ABCD-EFGH-JKL1", "ABCD-EFGH-JKLMN", &"A".repeat(100)] {
            assert_eq!(hash(bad), None, "{bad}");
        }
    }
}
