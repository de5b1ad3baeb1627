//! Time-based one-time passwords (RFC 6238) for the second factor: 30-second
//! steps, 6 digits, HMAC-SHA-1 (what authenticator apps expect), codes
//! accepted within ±1 step, each step at most once (the step of the last
//! accepted code is stored, and only a later one is accepted). The HOTP
//! computation is the `totp-rs` crate's.

use rand::TryRng;
use totp_rs::{Algorithm, TOTP};

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: usize = 6;
/// 160 bits, the HMAC-SHA-1 block's natural key size (RFC 4226 §4).
pub const SECRET_BYTES: usize = 20;

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut secret).expect("the operating system's random source");
    secret
}

/// RFC 4648 base32 without padding, the form authenticator apps take.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buffer = [0u8; 5];
        buffer[..chunk.len()].copy_from_slice(chunk);
        let bits = buffer.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for n in 0..symbols {
            let index = (bits >> (35 - 5 * n)) & 0x1f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// The `otpauth://` URI of a secret (Key Uri Format), for a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32(secret)
    )
}

/// The step (time / 30 s) whose code `code` is, within ±1 step of `now`
/// (epoch seconds), if it is later than `last_used`: the step to store.
pub fn accepted_step(secret: &[u8], code: &str, now: i64, last_used: Option<u64>) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, secret.to_vec()).ok()?;
    let current = u64::try_from(now).ok()? / STEP_SECONDS;
    let candidates = [current.checked_sub(1), Some(current), current.checked_add(1)];
    candidates
        .into_iter()
        .flatten()
        .filter(|step| last_used.is_none_or(|used| *step > used))
        .find(|step| constant_time_eq(totp.generate(step * STEP_SECONDS).as_bytes(), code.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (SHA-1 key), the last 6 of its 8 digits.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_vectors_verify_within_one_step_and_only_once() {
        for (time, code) in
            [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            let step = (time / 30) as u64;
            assert_eq!(accepted_step(RFC_SECRET, code, time, None), Some(step), "{time}");
            assert_eq!(accepted_step(RFC_SECRET, code, time + 30, None), Some(step), "one step late");
            assert_eq!(accepted_step(RFC_SECRET, code, time - 30, None), Some(step), "one step early");
            assert_eq!(accepted_step(RFC_SECRET, code, time + 60, None), None, "two steps late");
            assert_eq!(accepted_step(RFC_SECRET, code, time, Some(step)), None, "replayed");
        }
        for bad in ["", "28708", "2870822", "28708a", "２８７０８２"] {
            assert_eq!(accepted_step(RFC_SECRET, bad, 59, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_and_the_uri() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = otpauth_uri("caas acme", "ada@example.com", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/caas%20acme:ada%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=caas%20acme&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(new_secret().len(), SECRET_BYTES);
        assert_ne!(new_secret(), new_secret());
    }
}
