//! The hash chain, pure: entry content, hashed bytes, hashes, and the
//! verifier that walks a chain and names its first broken link.
//!
//! Entry `n` (from 1) of a tenant's chain:
//!
//! ```text
//! hash(n) = SHA-256( raw32(prev_hash) ‖ hashed_bytes(entry n) )
//! prev_hash(1) = GENESIS_HASH (64 zeros), prev_hash(n) = hash(n - 1)
//! ```
//!
//! `raw32` is the 32 bytes the lowercase hex digest stands for. The hashed
//! bytes (format 1) are the UTF-8 JSON of the object with the members
//! `aggregate_id, aggregate_type, correlation_id, event_id, occurred_at,
//! payload, recorded_at, schema_version, seq, tenant_id, type` — every object
//! (this one and those nested in `payload`) with its keys sorted by their UTF-8
//! bytes, no whitespace, strings escaped as JSON requires (`"`, `\`, control
//! characters; everything else literal), integers in decimal, floats in their
//! shortest round-trip form. `docs/EVENTS.md` repeats this for consumers.

use crate::outbox::OutboxEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of a tenant's audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub event_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub occurred_at: String,
    pub correlation_id: String,
    pub schema_version: u32,
    pub payload: Value,
    /// When the audit writer appended it.
    pub recorded_at: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The end of a chain: the last seq and its hash (0 and the genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
}

impl Checkpoint {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_HASH.to_owned() }
    }
}

impl AuditEntry {
    /// The entry that follows `head` for `event`.
    pub fn next(head: &Checkpoint, event: &OutboxEvent, recorded_at: &str) -> Self {
        let mut entry = Self {
            seq: head.seq + 1,
            event_id: event.event_id.clone(),
            tenant_id: event.tenant_id.clone(),
            event_type: event.event_type.clone(),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            occurred_at: event.occurred_at.clone(),
            correlation_id: event.correlation_id.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            recorded_at: recorded_at.to_owned(),
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.expected_hash(&head.hash);
        entry
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint { seq: self.seq, hash: self.hash.clone() }
    }

    /// The hashed bytes of the entry's content (see the module doc).
    pub fn hashed_bytes(&self) -> Vec<u8> {
        let content = serde_json::json!({
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "correlation_id": self.correlation_id,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "payload": self.payload,
            "recorded_at": self.recorded_at,
            "schema_version": self.schema_version,
            "seq": self.seq,
            "tenant_id": self.tenant_id,
            "type": self.event_type,
        });
        crate::sorted_json::encode(&content).into_bytes()
    }

    /// The hash this entry must have after `prev_hash`.
    pub fn expected_hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(hex_decode(prev_hash).unwrap_or_default());
        hasher.update(self.hashed_bytes());
        hex_encode(&hasher.finalize())
    }
}

pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// Why a link is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// The entry with this seq is missing (deleted, or the chain has a gap).
    MissingEntry,
    /// The stored entry cannot be read as an entry.
    Undecodable,
    /// `prev_hash` is not the previous entry's hash.
    PrevHashMismatch,
    /// The stored hash is not the hash of the content.
    HashMismatch,
    /// The chain head does not match the last entry (tail truncated or altered).
    HeadMismatch,
    /// The entry at a signed checkpoint's seq does not have the checkpoint's
    /// hash: an entry at or below the checkpoint was changed (and the chain
    /// re-hashed after it).
    CheckpointMismatch,
    /// The chain ends before a signed checkpoint: its tail was cut off (and
    /// the head moved back).
    Truncated,
    /// Entries are stored after the head: the head was moved back over them.
    EntriesPastHead,
    /// A stored checkpoint does not verify with the published key, or is
    /// stored under another tenant or seq than the one it signs.
    BadCheckpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    pub seq: u64,
    pub reason: BreakReason,
}

/// Walks entries in seq order from a trusted checkpoint, stopping at the
/// first broken link.
#[derive(Debug, Clone)]
pub struct Verifier {
    last: Checkpoint,
    checked: u64,
    broken: Option<Broken>,
    /// Signed checkpoints (already verified) the entries must match, by seq.
    anchors: BTreeMap<u64, String>,
}

impl Verifier {
    pub fn from(checkpoint: Checkpoint) -> Self {
        Self { last: checkpoint, checked: 0, broken: None, anchors: BTreeMap::new() }
    }

    /// A verifier over signed checkpoints (signatures already checked), for a
    /// chain whose oldest stored entry is `oldest` (`None`: no entries). It
    /// starts from the genesis when entry 1 is stored, else from the highest
    /// checkpoint below the oldest entry (entries at or below a checkpoint may
    /// have been removed by retention): verification always starts from a
    /// signed checkpoint. Every checkpoint after the start must then match
    /// the entry at its seq, and the chain must reach the latest one.
    pub fn anchored(checkpoints: &[Checkpoint], oldest: Option<u64>) -> Self {
        let start = checkpoints
            .iter()
            .filter(|c| oldest.is_none_or(|oldest| c.seq < oldest) && oldest != Some(1))
            .max_by_key(|c| c.seq)
            .cloned()
            .unwrap_or_else(Checkpoint::genesis);
        let anchors =
            checkpoints.iter().filter(|c| c.seq > start.seq).map(|c| (c.seq, c.hash.clone())).collect();
        let mut verifier = Self::from(start);
        verifier.anchors = anchors;
        verifier
    }

    /// The latest checkpoint the chain must reach (its seq), if any after the start.
    pub fn reach(&self) -> Option<u64> {
        self.anchors.keys().next_back().copied()
    }

    /// Stops the walk: something is wrong at `seq` that the walk itself
    /// cannot see (entries past the head, a bad checkpoint).
    pub fn break_at(&mut self, seq: u64, reason: BreakReason) {
        self.fail(seq, reason);
    }

    pub fn broken(&self) -> Option<Broken> {
        self.broken
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    pub fn last(&self) -> &Checkpoint {
        &self.last
    }

    fn fail(&mut self, seq: u64, reason: BreakReason) {
        if self.broken.is_none() {
            self.broken = Some(Broken { seq, reason });
        }
    }

    /// Checks the next stored entry; `Err(seq)` stands for one stored under
    /// `seq` that could not be decoded. Returns false once the chain is broken.
    pub fn check(&mut self, entry: Result<&AuditEntry, u64>) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let expected_seq = self.last.seq + 1;
        let seq = match entry {
            Ok(entry) => entry.seq,
            Err(seq) => seq,
        };
        if seq != expected_seq {
            self.fail(expected_seq, BreakReason::MissingEntry);
            return false;
        }
        self.checked += 1;
        let entry = match entry {
            Ok(entry) => entry,
            Err(seq) => {
                self.fail(seq, BreakReason::Undecodable);
                return false;
            }
        };
        if entry.prev_hash != self.last.hash {
            self.fail(seq, BreakReason::PrevHashMismatch);
            return false;
        }
        if entry.hash != entry.expected_hash(&self.last.hash) {
            self.fail(seq, BreakReason::HashMismatch);
            return false;
        }
        if self.anchors.get(&seq).is_some_and(|signed| *signed != entry.hash) {
            self.fail(seq, BreakReason::CheckpointMismatch);
            return false;
        }
        self.last = entry.checkpoint();
        true
    }

    /// Compares the walked chain with the stored head (the writer's view of its end).
    pub fn finish(&mut self, head: Option<&Checkpoint>) {
        if self.broken.is_some() {
            return;
        }
        let head = head.cloned().unwrap_or_else(Checkpoint::genesis);
        if head.seq > self.last.seq {
            self.fail(self.last.seq + 1, BreakReason::MissingEntry);
        } else if head != self.last {
            self.fail(self.last.seq.max(1), BreakReason::HeadMismatch);
        } else if self.reach().is_some_and(|latest| latest > self.last.seq) {
            self.fail(self.last.seq + 1, BreakReason::Truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u32) -> OutboxEvent {
        let tenant = crate::tenant::TenantId::parse("acme").unwrap();
        OutboxEvent::new(
            &tenant,
            "user",
            "u1",
            "user.login_succeeded",
            time::OffsetDateTime::UNIX_EPOCH,
            "c",
            json!({"n": n, "z": [1, {"b": 2, "a": "é\"\n"}]}),
        )
    }

    fn chain(len: u32) -> Vec<AuditEntry> {
        let mut head = Checkpoint::genesis();
        (0..len)
            .map(|n| {
                let entry = AuditEntry::next(&head, &event(n), "2026-01-01T00:00:00Z");
                head = entry.checkpoint();
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry], head: Option<&Checkpoint>) -> Verifier {
        let mut verifier = Verifier::from(Checkpoint::genesis());
        for entry in entries {
            verifier.check(Ok(entry));
        }
        verifier.finish(head);
        verifier
    }

    #[test]
    fn sorted_json_sorts_keys_and_is_stable() {
        use crate::sorted_json::encode as sorted;
        let value = json!({"b": 1, "a": {"d": [true, null, 1.5], "c": "x\u{0001}y"}});
        assert_eq!(sorted(&value), r#"{"a":{"c":"x\u0001y","d":[true,null,1.5]},"b":1}"#);
        let reparsed: Value = serde_json::from_str(&sorted(&value)).unwrap();
        assert_eq!(sorted(&reparsed), sorted(&value));
    }

    #[test]
    fn hash_is_sha256_of_prev_and_hashed_bytes() {
        let entry = &chain(1)[0];
        let mut input = vec![0u8; 32];
        input.extend(entry.hashed_bytes());
        assert_eq!(entry.hash, hex_encode(&Sha256::digest(&input)));
        assert_eq!(entry.prev_hash, GENESIS_HASH);
        assert!(
            String::from_utf8(entry.hashed_bytes())
                .unwrap()
                .starts_with(r#"{"aggregate_id":"u1","aggregate_type":"user","#)
        );
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain(5);
        let v = verify(&entries, Some(&entries[4].checkpoint()));
        assert_eq!((v.broken(), v.checked()), (None, 5));
        let v = verify(&[], None);
        assert_eq!((v.broken(), v.checked()), (None, 0));
    }

    fn anchored(entries: &[AuditEntry], checkpoints: &[Checkpoint], head: Option<&Checkpoint>) -> Verifier {
        let mut verifier = Verifier::anchored(checkpoints, entries.first().map(|e| e.seq));
        let start = verifier.last().seq;
        for entry in entries.iter().filter(|e| e.seq > start) {
            verifier.check(Ok(entry));
        }
        verifier.finish(head);
        verifier
    }

    #[test]
    fn checkpoints_catch_truncation_and_rewrites() {
        let entries = chain(6);
        let signed = [entries[1].checkpoint(), entries[3].checkpoint()];
        let v = anchored(&entries, &signed, Some(&entries[5].checkpoint()));
        assert_eq!((v.broken(), v.checked()), (None, 6));

        // The tail cut off and the head moved back: the head agrees, the checkpoint does not.
        let v = anchored(&entries[..3], &signed, Some(&entries[2].checkpoint()));
        assert_eq!(v.broken(), Some(Broken { seq: 4, reason: BreakReason::Truncated }));

        // Entry 2 changed and every hash after it recomputed: links and head agree.
        let mut rewritten = entries.clone();
        rewritten[1].payload = json!({"n": 99});
        for i in 1..rewritten.len() {
            rewritten[i].prev_hash = rewritten[i - 1].hash.clone();
            rewritten[i].hash = rewritten[i].expected_hash(&rewritten[i].prev_hash);
        }
        let head = rewritten[5].checkpoint();
        assert_eq!(verify(&rewritten, Some(&head)).broken(), None, "without checkpoints it passes");
        assert_eq!(
            anchored(&rewritten, &signed, Some(&head)).broken(),
            Some(Broken { seq: 2, reason: BreakReason::CheckpointMismatch })
        );

        // Entries up to a checkpoint removed (retention): it starts from that checkpoint.
        let v = anchored(&entries[2..], &signed, Some(&entries[5].checkpoint()));
        assert_eq!((v.broken(), v.checked(), v.last().seq), (None, 4, 6));
        // Removed past a checkpoint: the first missing entry is named.
        let v = anchored(&entries[3..], &signed, Some(&entries[5].checkpoint()));
        assert_eq!(v.broken(), Some(Broken { seq: 3, reason: BreakReason::MissingEntry }));
        // Everything removed up to the latest checkpoint, which is the head.
        let v = anchored(&[], &signed, Some(&entries[3].checkpoint()));
        assert_eq!(v.broken(), None);
    }

    #[test]
    fn tampering_names_the_first_broken_seq() {
        let entries = chain(5);
        let head = entries[4].checkpoint();

        let mut edited = entries.clone();
        edited[2].payload = json!({"n": 99});
        assert_eq!(
            verify(&edited, Some(&head)).broken(),
            Some(Broken { seq: 3, reason: BreakReason::HashMismatch })
        );

        // Rehashing the edited entry breaks the next link instead.
        edited[2].hash = edited[2].expected_hash(&edited[2].prev_hash);
        assert_eq!(
            verify(&edited, Some(&head)).broken(),
            Some(Broken { seq: 4, reason: BreakReason::PrevHashMismatch })
        );

        let mut deleted = entries.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, Some(&head)).broken(),
            Some(Broken { seq: 2, reason: BreakReason::MissingEntry })
        );

        let truncated = &entries[..3];
        assert_eq!(
            verify(truncated, Some(&head)).broken(),
            Some(Broken { seq: 4, reason: BreakReason::MissingEntry })
        );

        let mut last_rewritten = entries.clone();
        last_rewritten[4].payload = json!({});
        last_rewritten[4].hash = last_rewritten[4].expected_hash(&last_rewritten[4].prev_hash);
        assert_eq!(
            verify(&last_rewritten, Some(&head)).broken(),
            Some(Broken { seq: 5, reason: BreakReason::HeadMismatch })
        );

        let mut verifier = Verifier::from(Checkpoint::genesis());
        verifier.check(Ok(&entries[0]));
        verifier.check(Err(2));
        assert_eq!(verifier.broken(), Some(Broken { seq: 2, reason: BreakReason::Undecodable }));
    }

    #[test]
    fn verification_can_start_from_a_checkpoint() {
        let entries = chain(6);
        let mut verifier = Verifier::from(entries[2].checkpoint());
        for entry in &entries[3..] {
            assert!(verifier.check(Ok(entry)));
        }
        verifier.finish(Some(&entries[5].checkpoint()));
        assert_eq!((verifier.broken(), verifier.checked()), (None, 3));
    }
}
