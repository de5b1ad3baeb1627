//! The audit services: appending events to a tenant's chain (audit-writer),
//! verifying a chain (verify-audit, the backup drill), paging through it
//! (list-audit).

use super::chain::{AuditEntry, BreakReason, Checkpoint, Verifier};
use crate::app::App;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use crate::store::audit as store;
use crate::store::labels::AuditLabel;
use crate::store::tx::{Failure, MAX_ACTIONS, Tx, TxError};
use crate::tenant::TenantId;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Serialize;
use std::collections::HashSet;

/// Entries per transaction: two actions each, plus the head.
pub const MAX_ENTRIES_PER_TX: usize = (MAX_ACTIONS - 1) / store::ACTIONS_PER_ENTRY;
/// Appends lost to a concurrent writer retried (with backoff) before giving up.
const APPEND_ATTEMPTS: u32 = 10;
const VERIFY_PAGE: i32 = 500;
pub const DEFAULT_LIST_LIMIT: u32 = 50;
pub const MAX_LIST_LIMIT: u32 = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub appended: usize,
    /// Events already in the chain (redelivered), skipped.
    pub duplicates: usize,
}

/// Appends `events` (one tenant's, in order) to the tenant's chain. Events
/// already in the chain are skipped, so redelivery never forks or duplicates.
/// Up to [`MAX_ENTRIES_PER_TX`] entries go in one transaction, with the head
/// moved on the condition that it still is where we read it.
#[tracing::instrument(skip_all, fields(tenant = %tenant, events = events.len()))]
pub async fn append_events(
    app: &App,
    tenant: &TenantId,
    events: &[OutboxEvent],
) -> Result<AppendOutcome, AppError> {
    let mut seen = HashSet::new();
    let mut pending: Vec<&OutboxEvent> = events.iter().filter(|e| seen.insert(e.event_id.as_str())).collect();
    let mut outcome = AppendOutcome { appended: 0, duplicates: events.len() - pending.len() };
    let mut head: Option<Checkpoint> = None;
    let mut first_seq = None;
    let mut attempts = 0;
    while !pending.is_empty() {
        let current = match head.take() {
            Some(head) => head,
            None => store::head(&app.clients.dynamodb, &app.config.table_name, tenant.as_str())
                .await?
                .unwrap_or_else(Checkpoint::genesis),
        };
        first_seq.get_or_insert(current.seq);
        let chunk = pending.len().min(MAX_ENTRIES_PER_TX);
        match append_chunk(app, tenant, &current, &pending[..chunk]).await {
            Ok(last) => {
                outcome.appended += chunk;
                pending.drain(..chunk);
                head = Some(last);
                attempts = 0;
            }
            Err(TxError::Cancelled(failures)) => {
                let known = already_appended(app, tenant, failures, &pending[..chunk]).await?;
                let before = pending.len();
                pending.retain(|e| !known.contains(&e.event_id));
                outcome.duplicates += before - pending.len();
                if known.is_empty() {
                    // Another writer moved the head: back off, re-read it, retry.
                    attempts += 1;
                    if attempts >= APPEND_ATTEMPTS {
                        return Err(AppError::Unavailable("audit chain append kept conflicting".into()));
                    }
                    backoff(attempts).await;
                }
            }
            Err(TxError::Other(error)) => return Err(error),
        }
    }
    if outcome.appended > 0 || outcome.duplicates > 0 {
        tracing::info!(appended = outcome.appended, duplicates = outcome.duplicates, "audit chain appended");
    }
    if let (Some(from), Some(head)) = (first_seq, head.as_ref()) {
        checkpoint_every(app, tenant, from, head).await;
    }
    Ok(outcome)
}

/// Signs `head` when the chain passed a multiple of the configured interval
/// since `from` (and checkpoints are configured). A failure is logged, not
/// returned: the entries are committed, and the verify job signs the head on
/// its next run.
async fn checkpoint_every(app: &App, tenant: &TenantId, from: u64, head: &Checkpoint) {
    let every = app.config.audit.checkpoint_every.max(1);
    if app.config.audit.signing_key_id.is_none() || from / every >= head.seq / every {
        return;
    }
    if let Err(error) = super::trust::sign(app, tenant, head).await {
        tracing::error!(%error, seq = head.seq, "audit checkpoint not signed; the verify job will sign one");
    }
}

/// Chains `events` after `current` and commits them with the head moved to
/// the last one, which is returned.
async fn append_chunk(
    app: &App,
    tenant: &TenantId,
    current: &Checkpoint,
    events: &[&OutboxEvent],
) -> Result<Checkpoint, TxError<AuditLabel>> {
    let table = &app.config.table_name;
    let recorded_at = rfc3339(app.now());
    let mut last = current.clone();
    let entries: Vec<AuditEntry> = events
        .iter()
        .map(|event| {
            let entry = AuditEntry::next(&last, event, &recorded_at);
            last = entry.checkpoint();
            entry
        })
        .collect();
    let tx = store::append(table, tenant.as_str(), current, &entries)?
        .into_iter()
        .fold(Tx::without_event(table), Tx::push);
    tx.commit(&app.clients.dynamodb).await?;
    Ok(last)
}

/// Why an append of `chunk` was cancelled: the ids of its events already in
/// the chain (redelivered), or none when another writer moved the head. Any
/// other cancellation is an error.
async fn already_appended(
    app: &App,
    tenant: &TenantId,
    failures: Vec<Failure<AuditLabel>>,
    chunk: &[&OutboxEvent],
) -> Result<HashSet<String>, AppError> {
    let marker_failed = failures.iter().any(|f| f.label == AuditLabel::Marker);
    let mut known: HashSet<String> = failures
        .iter()
        .filter(|f| f.label == AuditLabel::Marker)
        .filter_map(|f| f.item.as_ref().and_then(store::marker_event_id))
        .collect();
    if marker_failed && known.is_empty() {
        let ids: Vec<String> = chunk.iter().map(|e| e.event_id.clone()).collect();
        known = store::appended_events(&app.clients.dynamodb, &app.config.table_name, tenant.as_str(), &ids)
            .await?;
    }
    // An entry already at one of our seqs also means the head moved
    // (a service may report only the first failed condition).
    let head_moved = failures.iter().any(|f| matches!(f.label, AuditLabel::Head | AuditLabel::Entry));
    if known.is_empty() && !head_moved {
        return Err(TxError::Cancelled(failures).into_app_error());
    }
    Ok(known)
}

/// Jittered exponential backoff before retrying a lost append race.
async fn backoff(attempt: u32) {
    use rand::RngExt;
    let base = 10u64 << attempt.min(6);
    let jitter = rand::rng().random_range(0..=base);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// Appends an SQS batch of envelopes (the events queue). Messages are grouped
/// by message group (the tenant); each group's messages are appended in order.
/// FIFO rule: from the first message of a group that fails (undecodable, or the
/// append failed), that message and the rest of its group are reported as batch
/// item failures, so nothing overtakes it.
#[tracing::instrument(skip_all, fields(messages = event.records.len()))]
pub async fn append_messages(app: &App, event: &SqsEvent) -> Result<SqsBatchResponse, AppError> {
    let groups = crate::outbox::message_groups(&event.records, |message| {
        envelope(message).ok().map(|(tenant, _)| tenant.to_string())
    });
    let results =
        futures::future::join_all(groups.iter().map(|(group, messages)| append_group(app, group, messages)))
            .await;
    crate::outbox::batch_failures(results.into_iter().flatten())
}

/// The messages of the group that failed.
async fn append_group<'a>(app: &App, group: &str, messages: &[&'a SqsMessage]) -> Vec<&'a SqsMessage> {
    let mut events = Vec::new();
    let mut tenant = None;
    let mut poison = messages.len();
    for (i, message) in messages.iter().enumerate() {
        let decoded = envelope(message).and_then(|(t, event)| {
            let in_group = message.attributes.get("MessageGroupId").is_none_or(|g| g == t.as_str());
            let same_tenant = tenant.as_ref().is_none_or(|known| known == &t);
            if in_group && same_tenant {
                Ok((t, event))
            } else {
                Err(AppError::Internal("envelope tenant does not match its message group".into()))
            }
        });
        match decoded {
            Ok((t, event)) => {
                tenant = Some(t);
                events.push(event);
            }
            Err(error) => {
                tracing::error!(%error, message_id = message.message_id.as_deref(), group, "unusable audit message");
                poison = i;
                break;
            }
        }
    }
    let Some(tenant) = tenant else { return messages.to_vec() };
    match append_events(app, &tenant, &events).await {
        Ok(_) => messages[poison..].to_vec(),
        Err(error) => {
            tracing::error!(%error, group, "audit append failed; the group is retried");
            messages.to_vec()
        }
    }
}

/// The outbox event a queue message carries, and its tenant.
pub fn envelope(message: &SqsMessage) -> Result<(TenantId, OutboxEvent), AppError> {
    let body = message.body.as_deref().ok_or_else(|| AppError::Internal("message without a body".into()))?;
    let event: OutboxEvent =
        serde_json::from_str(body).map_err(|e| AppError::internal("decode envelope", e))?;
    let tenant = TenantId::parse(&event.tenant_id).map_err(|e| AppError::internal("envelope tenant", e))?;
    Ok((tenant, event))
}

/// The result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub ok: bool,
    /// Entries re-hashed (up to and including the first broken one).
    pub entries_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<BreakReason>,
    /// The stored head: the writer's view of the chain's end.
    pub head_seq: u64,
    pub head_hash: String,
    /// The latest signed checkpoint the chain was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<u64>,
}

/// Where a verification starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// After a trusted position (the genesis, or an entry verified earlier).
    From(Checkpoint),
    /// From signed checkpoints (signatures already checked): see
    /// [`Verifier::anchored`].
    Anchored(Vec<Checkpoint>),
}

/// Verifies `tenant`'s whole chain in `table` (explicit, so a restored table
/// can be checked too): every entry from seq 1 is re-hashed and linked, and
/// the last one must match the head.
pub async fn verify_chain(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
) -> Result<ChainReport, AppError> {
    verify_chain_from(dynamodb, table, tenant, Checkpoint::genesis()).await
}

/// Verifies the entries after a trusted checkpoint (seq and hash of an entry
/// verified earlier). Entries appended after the head was read are left for
/// the next run.
pub async fn verify_chain_from(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
    checkpoint: Checkpoint,
) -> Result<ChainReport, AppError> {
    verify_chain_with(dynamodb, table, tenant, Start::From(checkpoint), false).await
}

/// Verifies `tenant`'s chain from `start`. `live` (the table the writers
/// write, not a restored copy, whose backup may hold an entry without its
/// head): entries stored past the head are a break too, unless a re-read
/// head shows they were appended meanwhile.
#[tracing::instrument(skip(dynamodb, start), fields(tenant = %tenant))]
pub async fn verify_chain_with(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
    start: Start,
    live: bool,
) -> Result<ChainReport, AppError> {
    let head = store::head(dynamodb, table, tenant.as_str()).await?;
    let end = head.as_ref().map_or(0, |h| h.seq);
    let (mut after, mut anchors, mut verifier) = match start {
        Start::From(checkpoint) => (checkpoint.seq, None, Some(Verifier::from(checkpoint))),
        Start::Anchored(checkpoints) => (0, Some(checkpoints), None),
    };
    let mut past_head = None;
    'pages: loop {
        let (page, more) = store::entries_after(dynamodb, table, tenant.as_str(), after, VERIFY_PAGE).await?;
        let seq_of = |entry: &Result<AuditEntry, u64>| match entry {
            Ok(entry) => entry.seq,
            Err(seq) => *seq,
        };
        let verifier = verifier.get_or_insert_with(|| {
            Verifier::anchored(&anchors.take().unwrap_or_default(), page.first().map(seq_of))
        });
        if head.is_none() && !page.is_empty() {
            // Entries without a head: the head was removed.
            let mut report = report(verifier, head.as_ref());
            report.ok = false;
            report.first_broken_seq = Some(verifier.last().seq + 1);
            report.reason = Some(BreakReason::HeadMismatch);
            return Ok(report);
        }
        for entry in &page {
            let seq = seq_of(entry);
            after = after.max(seq);
            if seq <= verifier.last().seq {
                continue;
            }
            if seq > end {
                past_head = Some(seq);
                break 'pages;
            }
            if !verifier.check(entry.as_ref().map_err(|seq| *seq)) {
                break 'pages;
            }
        }
        if !more || page.is_empty() {
            break;
        }
    }
    let verifier = verifier.get_or_insert_with(|| Verifier::anchored(&anchors.unwrap_or_default(), None));
    verifier.finish(head.as_ref());
    if let Some(seq) = past_head.filter(|_| live && verifier.broken().is_none()) {
        // Appends write their entries and the head in one transaction: an
        // entry past a head read again now was not appended meanwhile.
        let now = store::head(dynamodb, table, tenant.as_str()).await?;
        if now.is_none_or(|now| now.seq < seq) {
            verifier.break_at(end + 1, BreakReason::EntriesPastHead);
        }
    }
    let report = report(verifier, head.as_ref());
    if !report.ok {
        tracing::warn!(first_broken_seq = report.first_broken_seq, reason = ?report.reason, "audit chain broken");
    }
    Ok(report)
}

fn report(verifier: &Verifier, head: Option<&Checkpoint>) -> ChainReport {
    let broken = verifier.broken();
    let head = head.cloned().unwrap_or_else(Checkpoint::genesis);
    ChainReport {
        ok: broken.is_none(),
        entries_checked: verifier.checked(),
        first_broken_seq: broken.map(|b| b.seq),
        reason: broken.map(|b| b.reason),
        head_seq: head.seq,
        head_hash: head.hash,
        checkpoint_seq: None,
    }
}

/// `?after_seq=&limit=` of `GET /v1/audit/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    pub after_seq: u64,
    pub limit: u32,
}

impl ListQuery {
    pub fn parse(after_seq: Option<&str>, limit: Option<&str>) -> Result<Self, AppError> {
        Self::parse_bounded(after_seq, limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
    }

    /// With another default and maximum limit (the export's).
    pub fn parse_bounded(
        after_seq: Option<&str>,
        limit: Option<&str>,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Self, AppError> {
        let after_seq = match after_seq.map(str::trim) {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                AppError::bad_request("after_seq", "after_seq: must be a non-negative integer")
            })?,
        };
        let limit = match limit.map(str::trim) {
            None => default_limit,
            Some(text) => {
                text.parse::<u32>().ok().filter(|n| (1..=max_limit).contains(n)).ok_or_else(|| {
                    AppError::bad_request("limit", format!("limit: must be an integer from 1 to {max_limit}"))
                })?
            }
        };
        Ok(Self { after_seq, limit })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<u64>,
}

/// A page of the tenant's entries in seq order. An entry that cannot be read
/// is left out (and logged); `verify` reports it.
pub async fn list(app: &App, tenant: &TenantId, query: ListQuery) -> Result<Page, AppError> {
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let fetch = i32::try_from(query.limit.saturating_add(1)).unwrap_or(i32::MAX);
    let (mut page, _) = store::entries_after(
        &app.clients.dynamodb,
        &app.config.table_name,
        tenant.as_str(),
        query.after_seq,
        fetch,
    )
    .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_after_seq =
        more.then(|| page.iter().map(|e| e.as_ref().map_or_else(|seq| *seq, |e| e.seq)).max()).flatten();
    Ok(Page { entries: page.into_iter().filter_map(Result::ok).collect(), next_after_seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<ListQuery, AppError>) -> Option<String> {
        match result {
            Err(AppError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request: {other:?}"),
        }
    }

    #[test]
    fn list_query_defaults_and_bounds() {
        assert_eq!(ListQuery::parse(None, None).unwrap(), ListQuery { after_seq: 0, limit: 50 });
        assert_eq!(ListQuery::parse(Some("7"), Some("200")).unwrap(), ListQuery { after_seq: 7, limit: 200 });
        assert_eq!(field(ListQuery::parse(None, Some("0"))).as_deref(), Some("limit"));
        assert_eq!(field(ListQuery::parse(None, Some("201"))).as_deref(), Some("limit"));
        assert_eq!(field(ListQuery::parse(None, Some("ten"))).as_deref(), Some("limit"));
        assert_eq!(field(ListQuery::parse(Some("-1"), None)).as_deref(), Some("after_seq"));
        assert_eq!(field(ListQuery::parse(Some("1.5"), None)).as_deref(), Some("after_seq"));
        // An empty value is not an absent one.
        assert_eq!(field(ListQuery::parse(Some(""), None)).as_deref(), Some("after_seq"));
        assert_eq!(field(ListQuery::parse(None, Some(""))).as_deref(), Some("limit"));
    }

    #[test]
    fn a_transaction_holds_at_most_the_action_limit() {
        const { assert!(MAX_ENTRIES_PER_TX * store::ACTIONS_PER_ENTRY < MAX_ACTIONS) };
        assert_eq!(MAX_ENTRIES_PER_TX, 49);
    }
}
