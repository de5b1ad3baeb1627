//! Rate limits: fixed-window counters in the table (one item per subject and
//! window, expiring by TTL), so every container of every function sees the
//! same count.
//!
//! A hit is `ADD n :one` conditional on `n < :limit`: as an [`Action`] it
//! rides in the transaction the operation commits anyway (no extra round
//! trip; a refused hit cancels the whole change), or it is one standalone
//! conditional `UpdateItem` where the limit must hold before costly work
//! (Argon2) starts. Either way a refusal is [`AppError::TooManyRequests`]
//! with the seconds until the window ends (`Retry-After`).
//!
//! Wiring a route takes a [`Counter`] and one call (and, in a transaction,
//! one line in its cancellation's mapping):
//! - before work: `ratelimit::consume(app, &Counter::per_source(LOGIN, &ctx.source_ip, limit, now)).await?`
//! - inside a transaction: `let counter = Counter::for_write(app, "capture", &who.principal);`,
//!   `tx.push(ratelimit::action(table, Label::RateLimit, &counter)?)`, and
//!   `ratelimit::refused(&error, Label::RateLimit, &counter, now)` on its cancellation.

use crate::app::App;
use crate::auth::principal::Principal;
use crate::config::ConfigError;
use crate::error::AppError;
use crate::store::labels::Label;
use crate::store::tx::TxError;
use crate::store::{Action, ratelimits};

/// At most `max` hits per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_seconds: i64,
}

impl Limit {
    pub const fn new(max: u32, window_seconds: i64) -> Self {
        Self { max, window_seconds }
    }

    /// Parses `"<max>/<window seconds>"`, e.g. `"20/60"`.
    fn parse(name: &'static str, text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::Invalid { name, reason: format!("{text:?} is not <max>/<seconds>") };
        let (max, window) = text.trim().split_once('/').ok_or_else(invalid)?;
        let max: u32 = max.trim().parse().map_err(|_| invalid())?;
        let window: i64 = window.trim().parse().map_err(|_| invalid())?;
        if max == 0 || !(1..=86_400).contains(&window) {
            return Err(invalid());
        }
        Ok(Self { max, window_seconds: window })
    }
}

/// The limits of every limited route (environment `RATE_LIMIT_*`, each `"<max>/<seconds>"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Untrusted login attempts (no valid device token) per source IP.
    pub login_ip: Limit,
    /// Registrations per source IP.
    pub register_ip: Limit,
    /// Refresh-token rotations (and unknown tokens) per source IP.
    pub refresh_ip: Limit,
    /// Second-factor attempts per source IP.
    pub mfa_ip: Limit,
    /// Token requests of machine clients per source IP.
    pub token_ip: Limit,
    /// Authenticated writes per principal and operation.
    pub writes: Limit,
    /// Media uploads requested per principal.
    pub uploads: Limit,
    /// Searches per principal and search route.
    pub searches: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_ip: Limit::new(30, 300),
            register_ip: Limit::new(20, 3_600),
            refresh_ip: Limit::new(120, 60),
            mfa_ip: Limit::new(30, 300),
            token_ip: Limit::new(120, 60),
            writes: Limit::new(120, 60),
            uploads: Limit::new(30, 300),
            searches: Limit::new(30, 60),
        }
    }
}

impl RateLimits {
    pub fn from_lookup(text: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let limit = |name: &'static str, default: Limit| match text(name) {
            Some(value) => Limit::parse(name, &value),
            None => Ok(default),
        };
        Ok(Self {
            login_ip: limit("RATE_LIMIT_LOGIN_IP", d.login_ip)?,
            register_ip: limit("RATE_LIMIT_REGISTER_IP", d.register_ip)?,
            refresh_ip: limit("RATE_LIMIT_REFRESH_IP", d.refresh_ip)?,
            mfa_ip: limit("RATE_LIMIT_MFA_IP", d.mfa_ip)?,
            token_ip: limit("RATE_LIMIT_TOKEN_IP", d.token_ip)?,
            writes: limit("RATE_LIMIT_WRITES", d.writes)?,
            uploads: limit("RATE_LIMIT_UPLOADS", d.uploads)?,
            searches: limit("RATE_LIMIT_SEARCH", d.searches)?,
        })
    }
}

/// The tenant scope of limits that are not any tenant's (per source IP):
/// the reserved tenant of platform bookkeeping.
const PLATFORM_SCOPE: &str = crate::store::migrations::SYSTEM_TENANT;

/// One subject's counter of one limit in the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The tenant whose keys hold the counter.
    pub scope: String,
    /// What is limited (`login`, `register`, an operation name).
    pub name: &'static str,
    /// Whose hits are counted (a source IP, a principal).
    pub subject: String,
    pub limit: Limit,
    /// Epoch seconds the window started at (a multiple of its length).
    pub window_start: i64,
}

impl Counter {
    fn new(scope: &str, name: &'static str, subject: String, limit: Limit, now: i64) -> Self {
        let window_start = now - now.rem_euclid(limit.window_seconds);
        Self { scope: scope.to_owned(), name, subject, limit, window_start }
    }

    /// Hits of `name` from one source IP, across tenants.
    pub fn per_source(name: &'static str, source_ip: &str, limit: Limit, now: time::OffsetDateTime) -> Self {
        Self::new(PLATFORM_SCOPE, name, source_ip.to_owned(), limit, now.unix_timestamp())
    }

    /// One principal's hits of the operation `name`, in its tenant.
    pub fn per_principal(
        name: &'static str,
        principal: &Principal,
        limit: Limit,
        now: time::OffsetDateTime,
    ) -> Self {
        let subject = format!("{:?}:{}", principal.kind, principal.id).to_lowercase();
        Self::new(principal.tenant.as_str(), name, subject, limit, now.unix_timestamp())
    }

    /// The caller's hits of the authenticated write `operation` (the
    /// configured write limit, now).
    pub fn for_write(app: &App, operation: &'static str, principal: &Principal) -> Self {
        Self::per_principal(operation, principal, app.config.rate_limits.writes, app.now())
    }

    /// Epoch seconds the window ends at; the counter item expires then.
    pub fn window_end(&self) -> i64 {
        self.window_start + self.limit.window_seconds
    }

    /// The answer to a refused hit: 429, retry when the window ends.
    pub fn refusal(&self, now: time::OffsetDateTime) -> AppError {
        let left = (self.window_end() - now.unix_timestamp()).max(1);
        tracing::info!(limit = self.name, "rate limit reached");
        AppError::TooManyRequests { retry_after_seconds: u64::try_from(left).unwrap_or(1) }
    }
}

/// Counts one hit with a standalone conditional update; refuses (429) when
/// the window's count has reached the limit.
pub async fn consume(app: &App, counter: &Counter) -> Result<(), AppError> {
    let counted = ratelimits::hit(&app.clients.dynamodb, &app.config.table_name, counter).await?;
    if counted { Ok(()) } else { Err(counter.refusal(app.now())) }
}

/// One hit as an action of the operation's own transaction.
pub fn action<L>(table: &str, label: L, counter: &Counter) -> Result<Action<L>, AppError> {
    ratelimits::hit_action(table, label, counter)
}

/// "`counter` has room", as an action of the operation's own transaction
/// (nothing is counted): e.g. a sign-in that must fail once its failures
/// reached their limit.
pub fn room<L>(table: &str, label: L, counter: &Counter) -> Result<Action<L>, AppError> {
    ratelimits::room_action(table, label, counter)
}

/// The 429 of a transaction cancelled by its hit on `counter`, if that is why.
pub fn refused<L: Label>(
    error: &TxError<L>,
    label: L,
    counter: &Counter,
    now: time::OffsetDateTime,
) -> Option<AppError> {
    error.condition_failed(label).map(|_| counter.refusal(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_windows_align() {
        assert_eq!(Limit::parse("X", " 20 / 60 ").unwrap(), Limit::new(20, 60));
        for bad in ["", "20", "0/60", "20/0", "20/x", "-1/60", "5/100000"] {
            assert!(Limit::parse("X", bad).is_err(), "{bad:?}");
        }
        let at = time::OffsetDateTime::from_unix_timestamp(1_000_075).unwrap();
        let counter = Counter::per_source("login", "127.0.0.2", Limit::new(5, 60), at);
        assert_eq!((counter.window_start, counter.window_end()), (1_000_020, 1_000_080));
        let AppError::TooManyRequests { retry_after_seconds } = counter.refusal(at) else { panic!() };
        assert_eq!(retry_after_seconds, 5);
        let defaults = RateLimits::from_lookup(&|_| None).unwrap();
        assert_eq!(defaults, RateLimits::default());
        let custom = RateLimits::from_lookup(&|name| (name == "RATE_LIMIT_WRITES").then(|| "3/10".into()));
        assert_eq!(custom.unwrap().writes, Limit::new(3, 10));
    }
}
