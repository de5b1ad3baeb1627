//! Configuration, read from the environment template.yaml gives each function.
//! Tests build the same struct from the same variables (resolved from the
//! template), so the template stays the single source of truth.

use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Argon2id cost. Defaults are the seeds' (m = 64 MiB, t = 3, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Self { memory_kib: 65_536, iterations: 3, parallelism: 1 }
    }
}

/// Per-account lockout: `threshold` failures within `window_seconds` lock the
/// account for `duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub window_seconds: i64,
    pub duration_seconds: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { threshold: 5, window_seconds: 900, duration_seconds: 900 }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// The key the token key ids start from (the stack's first signing key).
    pub token_signing_key_id: Option<String>,
    /// The alias tokens are signed with (the current key); the key id when absent.
    pub token_signing_key_alias: Option<String>,
    /// The alias of the previous key, published until it is retired.
    pub token_previous_key_alias: Option<String>,
    pub data_key_id: Option<String>,
    /// The HMAC key (KMS, `HMAC_256`) behind the email lookup hashes.
    pub lookup_key_id: Option<String>,
    /// `ERASURES_TABLE`: the erasure list, outside the table's restore scope.
    pub erasures_table: Option<String>,
    pub events_queue_url: Option<String>,
    /// `DELIVERY_QUEUE_URL`: the FIFO queue of the chat events the deliver
    /// function pushes to WebSocket connections (outbox-drain publishes to it).
    pub delivery_queue_url: Option<String>,
    /// `CONNECTIONS_ENDPOINT`: the WebSocket API stage's URL, where its
    /// `@connections` management API answers (the deliver function).
    pub connections_endpoint: Option<String>,
    /// `SEARCH_QUEUE_URL`: the queue of the events the search index follows (outbox-drain).
    pub search_queue_url: Option<String>,
    pub jobs_queue_url: Option<String>,
    /// The bucket of conversation media (the media functions only).
    pub media_bucket: Option<String>,
    pub token_issuer: String,
    pub token_audience: String,
    pub argon2: Argon2Cost,
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_seconds: i64,
    /// A session's absolute lifetime: rotations extend its idle expiry
    /// (`refresh_token_ttl_seconds`) never past this.
    pub session_max_lifetime_seconds: i64,
    pub lockout: LockoutPolicy,
    pub idempotency_ttl_seconds: i64,
    /// How long an invitation can be accepted (default 7 days).
    pub invitation_ttl_seconds: i64,
    /// How long an authorization can be captured when the request names no
    /// `capture_before` (default 7 days), and the longest it may name (30 days).
    pub hold_ttl_seconds: i64,
    pub max_hold_ttl_seconds: i64,
    /// How long a machine client's previous secret keeps working after a
    /// rotation (default 24 hours; 0 ends it at once).
    pub client_secret_grace_seconds: i64,
    pub backup: BackupSettings,
    pub migrate: MigrateSettings,
    pub rate_limits: crate::ratelimit::RateLimits,
    pub audit: AuditSettings,
}

/// Signed audit checkpoints: the signing key, the table they are kept in,
/// and how often the audit writer signs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// `AUDIT_SIGNING_KEY_ID`: the KMS key (ES256) that signs checkpoints.
    pub signing_key_id: Option<String>,
    /// `AUDIT_CHECKPOINT_TABLE`.
    pub checkpoint_table: Option<String>,
    /// `AUDIT_CHECKPOINT_EVERY`: the audit writer signs the head each time
    /// the chain passes a multiple of this many entries (default 1000).
    pub checkpoint_every: u64,
}

/// The backup job: which tables, how long on-demand backups are kept, and
/// how far a drill's restored item count may differ from the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// `BACKUP_TABLES` (comma separated), default `TABLE_NAME`.
    pub tables: Vec<String>,
    pub retention_days: u32,
    pub keep_newest: u32,
    pub drill_count_tolerance_percent: u32,
}

/// The migrate job: page size of the segment scans, lease length, failure
/// threshold, and how close to the invocation deadline a segment hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateSettings {
    pub page_size: i32,
    pub default_segments: u32,
    pub lease_seconds: i64,
    pub max_failed_items: u64,
    pub deadline_margin_ms: u64,
    pub item_concurrency: usize,
    /// Test hook (`MIGRATE_FAIL_AFTER_PAGES`): a segment invocation fails
    /// after applying this many pages, before checkpointing the last one, as a
    /// crash would. Never set in template.yaml.
    pub fail_after_pages: Option<u32>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = |name: &'static str| lookup(name).filter(|v| !v.is_empty());
        let required = |name: &'static str| text(name).ok_or(ConfigError::Missing(name));
        let defaults = (Argon2Cost::default(), LockoutPolicy::default());
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            token_signing_key_id: text("TOKEN_SIGNING_KEY_ID"),
            token_signing_key_alias: text("TOKEN_SIGNING_KEY_ALIAS"),
            token_previous_key_alias: text("TOKEN_PREVIOUS_KEY_ALIAS"),
            data_key_id: text("DATA_KEY_ID"),
            lookup_key_id: text("LOOKUP_KEY_ID"),
            erasures_table: text("ERASURES_TABLE"),
            events_queue_url: text("EVENTS_QUEUE_URL"),
            delivery_queue_url: text("DELIVERY_QUEUE_URL"),
            connections_endpoint: text("CONNECTIONS_ENDPOINT"),
            search_queue_url: text("SEARCH_QUEUE_URL"),
            jobs_queue_url: text("JOBS_QUEUE_URL"),
            media_bucket: text("MEDIA_BUCKET"),
            token_issuer: text("TOKEN_ISSUER").unwrap_or_else(|| "caas".to_owned()),
            token_audience: text("TOKEN_AUDIENCE").unwrap_or_else(|| "caas-api".to_owned()),
            argon2: Argon2Cost {
                memory_kib: number(&text, "ARGON2_MEMORY_KIB", defaults.0.memory_kib, 8..=4_194_304)?,
                iterations: number(&text, "ARGON2_ITERATIONS", defaults.0.iterations, 1..=64)?,
                parallelism: number(&text, "ARGON2_PARALLELISM", defaults.0.parallelism, 1..=16)?,
            },
            access_token_ttl_seconds: number(&text, "ACCESS_TOKEN_TTL_SECONDS", 900, 60..=86_400)?,
            refresh_token_ttl_seconds: number(
                &text,
                "REFRESH_TOKEN_TTL_SECONDS",
                2_592_000,
                300..=31_536_000,
            )?,
            session_max_lifetime_seconds: number(
                &text,
                "SESSION_MAX_LIFETIME_SECONDS",
                7_776_000,
                300..=31_536_000,
            )?,
            lockout: LockoutPolicy {
                threshold: number(&text, "LOCKOUT_THRESHOLD", defaults.1.threshold, 1..=1000)?,
                window_seconds: number(
                    &text,
                    "LOCKOUT_WINDOW_SECONDS",
                    defaults.1.window_seconds,
                    1..=86_400,
                )?,
                duration_seconds: number(
                    &text,
                    "LOCKOUT_DURATION_SECONDS",
                    defaults.1.duration_seconds,
                    1..=86_400,
                )?,
            },
            idempotency_ttl_seconds: number(&text, "IDEMPOTENCY_TTL_SECONDS", 86_400, 86_400..=2_592_000)?,
            invitation_ttl_seconds: number(&text, "INVITATION_TTL_SECONDS", 604_800, 3_600..=2_592_000)?,
            rate_limits: crate::ratelimit::RateLimits::from_lookup(&text)?,
            hold_ttl_seconds: number(&text, "HOLD_TTL_SECONDS", 604_800, 60..=2_592_000)?,
            max_hold_ttl_seconds: number(&text, "MAX_HOLD_TTL_SECONDS", 2_592_000, 60..=2_592_000)?,
            client_secret_grace_seconds: number(&text, "CLIENT_SECRET_GRACE_SECONDS", 86_400, 0..=604_800)?,
            backup: BackupSettings {
                tables: match text("BACKUP_TABLES") {
                    Some(list) => {
                        list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
                    }
                    None => vec![required("TABLE_NAME")?],
                },
                retention_days: number(&text, "BACKUP_RETENTION_DAYS", 30, 1..=3650)?,
                keep_newest: number(&text, "BACKUP_KEEP_NEWEST", 7, 1..=1000)?,
                drill_count_tolerance_percent: number(
                    &text,
                    "BACKUP_DRILL_COUNT_TOLERANCE_PERCENT",
                    5,
                    0..=100,
                )?,
            },
            migrate: MigrateSettings {
                page_size: number(&text, "MIGRATE_PAGE_SIZE", 200, 1..=1000)?,
                default_segments: number(&text, "MIGRATE_SEGMENTS", 4, 1..=1000)?,
                lease_seconds: number(&text, "MIGRATE_LEASE_SECONDS", 900, 30..=7200)?,
                max_failed_items: number(&text, "MIGRATE_MAX_FAILED_ITEMS", 10, 0..=1_000_000)?,
                deadline_margin_ms: number(&text, "MIGRATE_DEADLINE_MARGIN_MS", 20_000, 0..=600_000)?,
                item_concurrency: number(&text, "MIGRATE_ITEM_CONCURRENCY", 16, 1..=256)?,
                fail_after_pages: match text("MIGRATE_FAIL_AFTER_PAGES") {
                    Some(_) => Some(number(&text, "MIGRATE_FAIL_AFTER_PAGES", 1, 1..=1_000_000)?),
                    None => None,
                },
            },
            audit: AuditSettings {
                signing_key_id: text("AUDIT_SIGNING_KEY_ID"),
                checkpoint_table: text("AUDIT_CHECKPOINT_TABLE"),
                checkpoint_every: number(&text, "AUDIT_CHECKPOINT_EVERY", 1000, 1..=1_000_000)?,
            },
        })
    }

    pub fn token_signing_key_id(&self) -> Result<&str, ConfigError> {
        self.token_signing_key_id.as_deref().ok_or(ConfigError::Missing("TOKEN_SIGNING_KEY_ID"))
    }

    /// What tokens are signed with: the signing alias, else the key id.
    pub fn token_signing_reference(&self) -> Result<&str, ConfigError> {
        match self.token_signing_key_alias.as_deref() {
            Some(alias) => Ok(alias),
            None => self.token_signing_key_id(),
        }
    }

    pub fn audit_signing_key_id(&self) -> Result<&str, ConfigError> {
        self.audit.signing_key_id.as_deref().ok_or(ConfigError::Missing("AUDIT_SIGNING_KEY_ID"))
    }

    pub fn erasures_table(&self) -> Result<&str, ConfigError> {
        self.erasures_table.as_deref().ok_or(ConfigError::Missing("ERASURES_TABLE"))
    }

    pub fn audit_checkpoint_table(&self) -> Result<&str, ConfigError> {
        self.audit.checkpoint_table.as_deref().ok_or(ConfigError::Missing("AUDIT_CHECKPOINT_TABLE"))
    }
}

fn number<T>(
    text: &impl Fn(&'static str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = text(name) else { return Ok(default) };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid { name, reason: format!("{raw:?} is not a number") })?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!("{value} is outside {}..={}", range.start(), range.end()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_seed_parameters() {
        let c = config(&[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(c.argon2, Argon2Cost { memory_kib: 65_536, iterations: 3, parallelism: 1 });
        assert_eq!(c.lockout, LockoutPolicy { threshold: 5, window_seconds: 900, duration_seconds: 900 });
        assert_eq!(c.access_token_ttl_seconds, 900);
        assert_eq!(c.refresh_token_ttl_seconds, 30 * 86_400);
        assert_eq!(c.invitation_ttl_seconds, 7 * 86_400);
        assert_eq!(c.client_secret_grace_seconds, 86_400);
        assert_eq!(c.backup.tables, vec!["t".to_owned()]);
        assert_eq!((c.backup.retention_days, c.backup.keep_newest), (30, 7));
        assert_eq!(c.migrate.fail_after_pages, None);
    }

    #[test]
    fn backup_tables_are_a_comma_list() {
        let c = config(&[("TABLE_NAME", "t"), ("BACKUP_TABLES", " a, b ,,c ")]).unwrap();
        assert_eq!(c.backup.tables, vec!["a", "b", "c"]);
        let c = config(&[("TABLE_NAME", "t"), ("MIGRATE_FAIL_AFTER_PAGES", "2")]).unwrap();
        assert_eq!(c.migrate.fail_after_pages, Some(2));
    }

    #[test]
    fn rejects_missing_table_and_out_of_range_values() {
        assert!(matches!(config(&[]), Err(ConfigError::Missing("TABLE_NAME"))));
        assert!(matches!(
            config(&[("TABLE_NAME", "t"), ("ARGON2_ITERATIONS", "0")]),
            Err(ConfigError::Invalid { name: "ARGON2_ITERATIONS", .. })
        ));
        assert!(matches!(
            config(&[("TABLE_NAME", "t"), ("LOCKOUT_THRESHOLD", "five")]),
            Err(ConfigError::Invalid { name: "LOCKOUT_THRESHOLD", .. })
        ));
    }
}
