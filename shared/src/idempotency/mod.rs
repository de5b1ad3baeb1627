//! Idempotency keys (Stripe's `Idempotency-Key`, Powertools' record states),
//! scoped to tenant + principal + operation. The decision what to do with an existing
//! record is pure ([`prior`]); [`executor`] runs an operation under a key
//! (read the record, decide, commit with the completed record, answer a lost
//! race); the record's key and layout are in [`crate::store::idempotency`].

pub mod executor;

pub use executor::{Idempotent, Outcome, Prepared, execute};

use crate::error::AppError;
use crate::store::idempotency::{IdempotencyRecord, RecordStatus};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_BYTES: usize = 255;

/// Reads and validates the `Idempotency-Key` header (required).
pub fn key_from(request: &lambda_http::Request) -> Result<String, AppError> {
    let key = crate::http::header_text(request, HEADER).map(str::trim).unwrap_or_default();
    if key.is_empty() {
        return Err(AppError::bad_request(
            "Idempotency-Key",
            "Idempotency-Key: header is required on this request",
        ));
    }
    if key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::bad_request(
            "Idempotency-Key",
            format!("Idempotency-Key: must be 1 to {MAX_KEY_BYTES} printable ASCII characters"),
        ));
    }
    Ok(key.to_owned())
}

/// The request fingerprint: operation, target and the body as sorted JSON.
pub fn fingerprint(operation: &str, target: &str, body: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    for part in [operation, "\n", target, "\n", &crate::sorted_json::encode(body)] {
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What an existing record means for a new request with the same key.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// No live record: process the request.
    Fresh,
    Replay(StoredResponse),
}

pub fn prior(
    record: Option<&IdempotencyRecord>,
    fingerprint: &str,
    now: i64,
    now_ms: i64,
) -> Result<Prior, AppError> {
    let Some(record) = record.filter(|r| r.expires_at > now) else { return Ok(Prior::Fresh) };
    if record.fingerprint != fingerprint {
        return Err(AppError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key".into(),
        ));
    }
    match record.status {
        RecordStatus::Completed => {
            let body = serde_json::from_str(&record.response_body)
                .map_err(|e| AppError::internal("stored idempotent response", e))?;
            Ok(Prior::Replay(StoredResponse { status: record.response_status, body }))
        }
        RecordStatus::InProgress => match record.in_progress_until_ms {
            Some(until) if until >= now_ms => {
                let seconds = ((until - now_ms) / 1000 + 1).clamp(1, 60) as u64;
                Err(AppError::InProgress { retry_after_seconds: seconds })
            }
            // Abandoned by an invocation that died: the key is usable again.
            _ => Ok(Prior::Fresh),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(
        status: RecordStatus,
        fingerprint: &str,
        expires_at: i64,
        until_ms: Option<i64>,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            tenant_id: "acme".into(),
            principal: "user:u-1".into(),
            operation: "capture-payment".into(),
            idempotency_key: "k".into(),
            status,
            fingerprint: fingerprint.into(),
            response_status: 200,
            response_body: r#"{"ok":true}"#.into(),
            created_at: "t".into(),
            expires_at,
            in_progress_until_ms: until_ms,
        }
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = fingerprint("op", "p1", &json!({"amount": 5, "meta": {"x": 1, "y": 2}}));
        let b = fingerprint("op", "p1", &json!({"meta": {"y": 2, "x": 1}, "amount": 5}));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("op", "p1", &json!({"amount": 6, "meta": {"x": 1, "y": 2}})));
        assert_ne!(a, fingerprint("op", "p2", &json!({"amount": 5, "meta": {"x": 1, "y": 2}})));
    }

    #[test]
    fn prior_records_decide_replay_mismatch_and_in_progress() {
        let done = record(RecordStatus::Completed, "f", 100, None);
        assert_eq!(
            prior(Some(&done), "f", 50, 50_000).unwrap(),
            Prior::Replay(StoredResponse { status: 200, body: json!({"ok": true}) })
        );
        assert!(matches!(prior(Some(&done), "g", 50, 50_000), Err(AppError::Unprocessable(_))));
        assert_eq!(
            prior(Some(&done), "g", 100, 100_000).unwrap(),
            Prior::Fresh,
            "expired, even if not yet deleted"
        );
        let running = record(RecordStatus::InProgress, "f", 100, Some(52_500));
        assert!(matches!(
            prior(Some(&running), "f", 50, 50_000),
            Err(AppError::InProgress { retry_after_seconds: 3 })
        ));
        assert_eq!(prior(Some(&running), "f", 53, 53_000).unwrap(), Prior::Fresh, "abandoned reservation");
        assert_eq!(prior(None, "f", 0, 0).unwrap(), Prior::Fresh);
    }
}
