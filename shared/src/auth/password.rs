//! Password hashing: Argon2id in PHC strings (parameters travel with the
//! hash, so they can be raised later); legacy bcrypt hashes are verified and
//! flagged for rehash. CPU-heavy: callers run these on the blocking pool.

use crate::config::Argon2Cost;
use crate::error::AppError;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    /// The password is right; `rehash` when the stored hash is bcrypt or uses
    /// other Argon2 parameters than the configured ones.
    Match {
        rehash: bool,
    },
}

fn argon2(cost: Argon2Cost) -> Result<Argon2<'static>, AppError> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| AppError::internal("argon2 parameters", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash(cost: Argon2Cost, password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::internal("hash password", e))
}

pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored.starts_with(prefix))
}

/// The most a stored hash may cost: the template's largest Argon2id parameters
/// (or the configured ones, if larger) and bcrypt cost 14. A stored string
/// beyond them was written by no configuration of ours, so it is a mismatch
/// without hashing: a corrupt or planted PHC string (`m=4294967295`, bcrypt
/// cost 31) cannot take the function's memory or time.
const MAX_STORED: Argon2Cost = Argon2Cost { memory_kib: 131_072, iterations: 10, parallelism: 4 };
const MAX_BCRYPT_COST: u32 = 14;

pub fn verify(cost: Argon2Cost, password: &str, stored: &str) -> Verdict {
    if is_bcrypt(stored) {
        let affordable =
            stored.get(4..6).and_then(|c| c.parse::<u32>().ok()).is_some_and(|c| c <= MAX_BCRYPT_COST);
        // bcrypt only reads 72 bytes; a longer password cannot be one we stored.
        return match affordable && password.len() <= 72 && bcrypt::verify(password, stored).unwrap_or(false) {
            true => Verdict::Match { rehash: true },
            false => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else { return Verdict::Mismatch };
    // Bounded before argon2 reads them: its own checks overflow on a huge `p`.
    let within = |name: &str, ceiling: u32| parsed.params.get_decimal(name).is_some_and(|v| v <= ceiling);
    let affordable = within("m", MAX_STORED.memory_kib.max(cost.memory_kib))
        && within("t", MAX_STORED.iterations.max(cost.iterations))
        && within("p", MAX_STORED.parallelism.max(cost.parallelism));
    if !affordable {
        tracing::warn!("stored password hash without its cost or beyond the verification ceiling");
        return Verdict::Mismatch;
    }
    if !argon2_matches(cost, password.as_bytes(), &parsed) {
        return Verdict::Mismatch;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == cost.memory_kib && p.t_cost() == cost.iterations && p.p_cost() == cost.parallelism
        });
    Verdict::Match { rehash: !current }
}

/// The block buffer of this process. A Lambda container serves one
/// invocation at a time, so one buffer serves every warm verification and
/// spares it allocating and zero-filling 64 MiB of fresh pages (a quarter of
/// its CPU). A verification that finds it in use (parallel tests), or whose
/// hash needs more memory than the configured cost, allocates its own.
static BLOCKS: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// Whether `password` gives the Argon2 hash `parsed` (compared in constant time).
fn argon2_matches(cost: Argon2Cost, password: &[u8], parsed: &PasswordHash<'_>) -> bool {
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else { return false };
    let algorithm = Algorithm::try_from(parsed.algorithm);
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(parsed)) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let hasher = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let mut hash_into = |blocks: &mut Vec<Block>| {
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::default());
        }
        hasher.hash_password_into_with_memory(password, salt, &mut out, blocks.as_mut_slice()).is_ok()
    };
    let shared = if params.m_cost() <= cost.memory_kib { BLOCKS.try_lock().ok() } else { None };
    let computed = match shared {
        Some(mut blocks) => {
            let computed = hash_into(&mut blocks);
            // What the last password left in memory does not outlive its check.
            blocks.fill(Block::default());
            computed
        }
        None => hash_into(&mut Vec::new()),
    };
    computed && Output::new(&out).is_ok_and(|out| out == expected)
}

/// A well-formed hash with the configured cost that matches no password:
/// verifying against it costs what a real verification costs, so an unknown
/// user answers in about the same time as a wrong password.
pub fn dummy_hash(cost: Argon2Cost) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        cost.memory_kib, cost.iterations, cost.parallelism
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn argon2_round_trip_and_rehash_on_new_cost() {
        let stored = hash(CHEAP, "correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(verify(CHEAP, "correct horse battery", &stored), Verdict::Match { rehash: false });
        assert_eq!(verify(CHEAP, "wrong horse battery", &stored), Verdict::Mismatch);
        let raised = Argon2Cost { iterations: 2, ..CHEAP };
        assert_eq!(verify(raised, "correct horse battery", &stored), Verdict::Match { rehash: true });
    }

    #[test]
    fn the_shared_buffer_and_an_own_one_agree() {
        let stored = hash(CHEAP, "correct horse battery").unwrap();
        let held = BLOCKS.lock().unwrap();
        assert_eq!(verify(CHEAP, "correct horse battery", &stored), Verdict::Match { rehash: false });
        drop(held);
        for _ in 0..2 {
            assert_eq!(verify(CHEAP, "correct horse battery", &stored), Verdict::Match { rehash: false });
            assert_eq!(verify(CHEAP, "wrong horse battery", &stored), Verdict::Mismatch);
        }
        assert!(BLOCKS.lock().unwrap().iter().all(|b| b.as_ref().iter().all(|w| *w == 0)), "wiped after use");
        // A hash that needs more memory than the configured cost uses its own buffer.
        let bigger = hash(Argon2Cost { memory_kib: 128, ..CHEAP }, "correct horse battery").unwrap();
        assert_eq!(verify(CHEAP, "correct horse battery", &bigger), Verdict::Match { rehash: true });
        assert!(BLOCKS.lock().unwrap().len() <= 64);
    }

    #[test]
    fn bcrypt_is_accepted_and_flagged() {
        let legacy = bcrypt::hash("legacy password 1", 4).unwrap();
        assert_eq!(verify(CHEAP, "legacy password 1", &legacy), Verdict::Match { rehash: true });
        assert_eq!(verify(CHEAP, "legacy password 2", &legacy), Verdict::Mismatch);
        let y = legacy.replacen("$2b$", "$2y$", 1);
        assert_eq!(verify(CHEAP, "legacy password 1", &y), Verdict::Match { rehash: true });
    }

    #[test]
    fn dummy_hash_parses_and_never_matches() {
        let dummy = dummy_hash(CHEAP);
        assert!(PasswordHash::new(&dummy).is_ok());
        assert_eq!(verify(CHEAP, "", &dummy), Verdict::Mismatch);
        assert_eq!(verify(CHEAP, "anything at all", &dummy), Verdict::Mismatch);
        assert_eq!(verify(CHEAP, "x", "not a hash"), Verdict::Mismatch);
    }

    #[test]
    fn stored_hashes_beyond_the_cost_ceiling_are_mismatches_without_hashing() {
        let started = std::time::Instant::now();
        let real = hash(CHEAP, "correct horse battery").unwrap();
        let (_, tail) = real.split_once("$m=64,t=1,p=1$").unwrap();
        for params in ["m=4294967295,t=1,p=1", "m=64,t=4294967295,p=1", "m=64,t=1,p=255", "m=131073,t=1,p=1"]
        {
            let planted = format!("$argon2id$v=19${params}${tail}");
            assert_eq!(verify(CHEAP, "correct horse battery", &planted), Verdict::Mismatch, "{params}");
        }
        let legacy = bcrypt::hash("legacy password 1", 4).unwrap();
        for cost in ["15", "31", "99"] {
            let planted = format!("$2b${cost}{}", &legacy[6..]);
            assert_eq!(verify(CHEAP, "legacy password 1", &planted), Verdict::Mismatch, "{cost}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // Within the ceiling, a costlier stored hash still verifies (and is flagged).
        let stored = hash(Argon2Cost { memory_kib: 128, ..CHEAP }, "correct horse battery").unwrap();
        assert_eq!(verify(CHEAP, "correct horse battery", &stored), Verdict::Match { rehash: true });
    }
}
