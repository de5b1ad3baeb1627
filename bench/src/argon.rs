//! Argon2id at the default cost: the `argon2` crate's own verification (a
//! fresh block buffer per call) and login's (one buffer per container,
//! reused), as built in this binary, against the reference C implementation
//! (argon2-cffi) on the same hash, in the same run.

use crate::error::{BenchError, Result};
use crate::stats::{Summary, summarize, thread_cpu};
use caas::auth::password;
use caas::config::Argon2Cost;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Report {
    pub cost: Argon2Cost,
    pub rounds: usize,
    pub ours_wall: Summary,
    pub ours_cpu: Summary,
    pub ours_sys: Duration,
    /// Login's verification (`caas::auth::password::verify`): one buffer
    /// per container, reused and wiped by every call.
    pub reused_cpu: Summary,
    pub reused_wall: Summary,
    pub reused_sys: Duration,
    pub c_wall: Summary,
    pub c_cpu: Summary,
    pub c_versions: String,
    pub interop: bool,
    pub avx2: bool,
}

const REFERENCE: &str = r#"
import json, sys, time
from importlib.metadata import version
from argon2 import PasswordHasher
from argon2.low_level import Type
stored, password, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
ph = PasswordHasher(type=Type.ID)
wall, cpu, ok = [], [], True
for _ in range(rounds):
    w, c = time.perf_counter(), time.thread_time()
    ok = ph.verify(stored, password) and ok
    cpu.append(time.thread_time() - c)
    wall.append(time.perf_counter() - w)
print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok,
    "versions": "argon2-cffi %s, argon2-cffi-bindings %s" % (version("argon2-cffi"), version("argon2-cffi-bindings"))}))
"#;

fn thread_sys() -> Duration {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(usage.ru_stime.tv_sec).unwrap_or(0), 0)
        + Duration::from_micros(u64::try_from(usage.ru_stime.tv_usec).unwrap_or(0))
}

fn durations(value: &serde_json::Value) -> Vec<Duration> {
    value.as_array().map_or_else(Vec::new, |a| {
        a.iter().filter_map(serde_json::Value::as_f64).map(Duration::from_secs_f64).collect()
    })
}

pub fn measure(python: &str, cost: Argon2Cost, rounds: usize) -> Result<Report> {
    const PASSWORD: &str = "correct horse battery staple";
    let stored =
        password::hash(cost, PASSWORD).map_err(|e| BenchError::Setup(format!("argon2 hash: {e}")))?;
    let parsed = argon2::password_hash::PasswordHash::new(&stored)
        .map_err(|e| BenchError::Setup(format!("parse our hash: {e}")))?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let sys0 = thread_sys();
    for _ in 0..rounds {
        let (c0, w0) = (thread_cpu(), Instant::now());
        let verified = argon2::password_hash::PasswordVerifier::verify_password(
            &argon2::Argon2::default(),
            PASSWORD.as_bytes(),
            &parsed,
        );
        cpu.push(thread_cpu().saturating_sub(c0));
        wall.push(w0.elapsed());
        verified.map_err(|e| BenchError::Setup(format!("the crate's verification of our own hash: {e}")))?;
    }
    let ours_sys = thread_sys().saturating_sub(sys0) / u32::try_from(rounds.max(1)).unwrap_or(1);

    // Login's verification: the per-container buffer, allocated by a first
    // (untimed) call, then reused and wiped by every call.
    let _ = password::verify(cost, PASSWORD, &stored);
    let (mut reused_wall, mut reused_cpu) = (Vec::new(), Vec::new());
    let sys0 = thread_sys();
    for _ in 0..rounds {
        let (c0, w0) = (thread_cpu(), Instant::now());
        let verdict = password::verify(cost, PASSWORD, &stored);
        reused_cpu.push(thread_cpu().saturating_sub(c0));
        reused_wall.push(w0.elapsed());
        if verdict != (password::Verdict::Match { rehash: false }) {
            return Err(BenchError::Setup(format!("our verification of our own hash gave {verdict:?}")));
        }
    }
    let reused_sys = thread_sys().saturating_sub(sys0) / u32::try_from(rounds.max(1)).unwrap_or(1);

    let output = Command::new(python)
        .args(["-c", REFERENCE, &stored, PASSWORD, &rounds.to_string()])
        .output()
        .map_err(BenchError::io(format!("run {python} (argon2-cffi)")))?;
    if !output.status.success() {
        return Err(BenchError::Setup(format!(
            "argon2-cffi run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let reference: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(Report {
        cost,
        rounds,
        ours_wall: summarize(&wall),
        ours_cpu: summarize(&cpu),
        ours_sys,
        reused_cpu: summarize(&reused_cpu),
        reused_wall: summarize(&reused_wall),
        reused_sys,
        c_wall: summarize(&durations(&reference["wall"])),
        c_cpu: summarize(&durations(&reference["cpu"])),
        c_versions: reference["versions"].as_str().unwrap_or("argon2-cffi").to_owned(),
        interop: reference["ok"] == serde_json::Value::Bool(true),
        avx2: cfg!(any(target_arch = "x86", target_arch = "x86_64")) && avx2(),
    })
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn avx2() -> bool {
    false
}
