//! Migration bookkeeping and the per-item conditional transform.
//!
//! Bookkeeping items live under the reserved tenant [`SYSTEM_TENANT`] (not a
//! valid tenant id, so it can never collide with one):
//!
//! | item | pk | sk | kind |
//! | --- | --- | --- | --- |
//! | lease lock | `T#_system#MIGRATE#LOCK` | `LOCK` | `migration_lock` |
//! | run | `T#_system#MIGRATE#RUN#<run_id>` | `RUN` | `migration_run` |
//! | segment checkpoint | `T#_system#MIGRATE#RUN#<run_id>` | `SEGMENT#<nnnnn>` | `migration_checkpoint` |
//! | history entry | `T#_system#MIGRATE#HISTORY` | `RUN#<run_id>` | `migration_history` |
//!
//! Run ids are UUIDv7, so history sorts in start order. The lock's expiry is
//! `lease_expires_at_ms`, deliberately not the TTL attribute: an expired
//! lease is taken over by the next run, which must see whose it was.

use super::{Item, from_item, get, key, tenant_pk, to_item};
use crate::error::AppError;
use crate::migrate::plan::{Direction, ItemPlan};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The pseudo-tenant of platform bookkeeping items.
pub const SYSTEM_TENANT: &str = "_system";
pub const LOCK_KIND: &str = "migration_lock";
pub const RUN_KIND: &str = "migration_run";
pub const CHECKPOINT_KIND: &str = "migration_checkpoint";
pub const HISTORY_KIND: &str = "migration_history";
/// Failed item keys kept per segment for the report.
pub const FAILED_KEYS_KEPT: usize = 10;

fn lock_key() -> Item {
    key(tenant_pk(SYSTEM_TENANT, "MIGRATE#LOCK"), "LOCK")
}

fn run_pk(run_id: &str) -> String {
    tenant_pk(SYSTEM_TENANT, &format!("MIGRATE#RUN#{run_id}"))
}

fn segment_sk(segment: u32) -> String {
    format!("SEGMENT#{segment:05}")
}

fn history_pk() -> String {
    tenant_pk(SYSTEM_TENANT, "MIGRATE#HISTORY")
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

// ------------------------------------------------------------------ lock

/// Who holds the migration lock and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The run id of the holder.
    pub owner: String,
    pub lease_expires_at_ms: i64,
    pub acquired_at: String,
}

#[derive(Serialize, Deserialize)]
struct LockItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Taken; `expired` is the lease this one replaced, if any.
    Acquired { expired: Option<Lease> },
    /// Someone else holds an unexpired lease.
    Held(Lease),
}

fn decode_lease(item: Item) -> Result<Lease, AppError> {
    Ok(from_item::<LockItem>(item)?.lease)
}

/// One conditional put: succeeds when there is no lock or its lease has expired.
pub async fn acquire_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    lease: &Lease,
    now_ms: i64,
) -> Result<Acquire, AppError> {
    let (pk, sk) = (tenant_pk(SYSTEM_TENANT, "MIGRATE#LOCK"), "LOCK".to_owned());
    let item =
        to_item(&LockItem { pk, sk, kind: LOCK_KIND.into(), schema_version: 1, lease: lease.clone() })?;
    let result = dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR lease_expires_at_ms < :now")
        .expression_attribute_values(":now", n(now_ms))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(output) => {
            let expired = output.attributes.filter(|a| !a.is_empty()).map(decode_lease).transpose()?;
            Ok(Acquire::Acquired { expired })
        }
        Err(error) if is_condition_failure(&error) => {
            let old = match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                _ => None,
            };
            let old = match old {
                Some(item) => Some(item),
                None => get(dynamodb, table, lock_key()).await?,
            };
            match old {
                Some(item) => Ok(Acquire::Held(decode_lease(item)?)),
                // Released between our put and our read: the caller may retry.
                None => Err(AppError::Unavailable("the migration lock changed hands; retry".into())),
            }
        }
        Err(error) => Err(AppError::from_sdk("acquire migration lock", error)),
    }
}

/// Extends the lease; `false` when `owner` no longer holds the lock.
pub async fn renew_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    owner: &str,
    expires_at_ms: i64,
) -> Result<bool, AppError> {
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(lock_key()))
        .update_expression("SET lease_expires_at_ms = :expires")
        .condition_expression("#owner = :owner")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":expires", n(expires_at_ms))
        .expression_attribute_values(":owner", s(owner))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("renew migration lock", error)),
    }
}

/// Deletes the lock if `owner` holds it; `false` when it did not.
pub async fn release_lock(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    owner: &str,
) -> Result<bool, AppError> {
    let result = dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(lock_key()))
        .condition_expression("#owner = :owner")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":owner", s(owner))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("release migration lock", error)),
    }
}

pub async fn read_lock(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Option<Lease>, AppError> {
    get(dynamodb, table, lock_key()).await?.map(decode_lease).transpose()
}

// ------------------------------------------------------------------ runs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Its lease expired and another run took the lock over.
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// One `up`/`down` command and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub direction: Direction,
    /// The table's version when the run started.
    pub from_version: u32,
    pub to_version: u32,
    /// Versions of the migrations this run applies (up) or reverts (down).
    pub versions: Vec<u32>,
    pub total_segments: u32,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Running total over all segments, compared with the failure threshold.
    #[serde(default)]
    pub items_failed: u64,
}

#[derive(Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    run: RunRecord,
}

pub async fn create_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run: &RunRecord,
) -> Result<(), AppError> {
    let item = to_item(&RunItem {
        pk: run_pk(&run.run_id),
        sk: "RUN".into(),
        kind: RUN_KIND.into(),
        schema_version: 1,
        run: run.clone(),
    })?;
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(|e| AppError::from_sdk("create migration run", e))?;
    Ok(())
}

pub async fn get_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
) -> Result<Option<RunRecord>, AppError> {
    match get(dynamodb, table, key(run_pk(run_id), "RUN")).await? {
        Some(item) => Ok(Some(from_item::<RunItem>(item)?.run)),
        None => Ok(None),
    }
}

/// Records `segment` as finished (a set add, so a redelivered message does
/// not count twice) and returns how many segments have finished.
pub async fn mark_segment_done(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    segment: u32,
) -> Result<usize, AppError> {
    let output = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key(run_pk(run_id), "RUN")))
        .update_expression("ADD segments_done :segment")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":segment", AttributeValue::Ns(vec![segment.to_string()]))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("mark segment done", e))?;
    match output.attributes.as_ref().and_then(|a| a.get("segments_done")) {
        Some(AttributeValue::Ns(done)) => Ok(done.len()),
        _ => Err(AppError::Internal("segments_done missing after update".into())),
    }
}

/// Adds to the run's failed-item total and returns the new total.
pub async fn add_failed(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    failed: u64,
) -> Result<u64, AppError> {
    let output = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key(run_pk(run_id), "RUN")))
        .update_expression("ADD items_failed :failed")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":failed", n(failed))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| AppError::from_sdk("count failed items", e))?;
    match output.attributes.as_ref().and_then(|a| a.get("items_failed")) {
        Some(AttributeValue::N(total)) => total.parse().map_err(|e| AppError::internal("items_failed", e)),
        _ => Err(AppError::Internal("items_failed missing after update".into())),
    }
}

/// Moves a running run to a final status; `false` if it was no longer running.
pub async fn finish_run(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    status: RunStatus,
    finished_at: &str,
    failure: Option<&str>,
) -> Result<bool, AppError> {
    let mut update = String::from("SET #status = :status, finished_at = :at");
    let mut request = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key(run_pk(run_id), "RUN")))
        .condition_expression("#status = :running")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":status", s(status.as_str()))
        .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
        .expression_attribute_values(":at", s(finished_at));
    if let Some(reason) = failure {
        update.push_str(", failure = :failure");
        request = request.expression_attribute_values(":failure", s(reason));
    }
    match request.update_expression(update).send().await {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("finish migration run", error)),
    }
}

// ------------------------------------------------------------------ checkpoints

/// Item counts of a segment, a run or a history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Items of the kinds the run touches that the scan returned.
    pub items_scanned: u64,
    /// Items transformed (in a dry run: that would have been).
    pub items_changed: u64,
    /// Items found already at their target version (a redelivered page, a
    /// live writer that wrote the new shape, an item of an unaffected shape).
    pub items_current: u64,
    pub items_failed: u64,
    /// Items changed per migration version.
    #[serde(default)]
    pub changed_by_version: BTreeMap<String, u64>,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.items_scanned += other.items_scanned;
        self.items_changed += other.items_changed;
        self.items_current += other.items_current;
        self.items_failed += other.items_failed;
        for (version, count) in &other.changed_by_version {
            *self.changed_by_version.entry(version.clone()).or_default() += count;
        }
    }
}

/// A resume point: `(segment, LastEvaluatedKey)` plus what the segment counted so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub run_id: String,
    pub segment: u32,
    /// The scan's LastEvaluatedKey after the last checkpointed page; `None`
    /// before the first page and once the segment is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<BTreeMap<String, String>>,
    /// Pages checkpointed; the optimistic version of this item.
    pub pages: u64,
    pub done: bool,
    #[serde(flatten)]
    pub counters: Counters,
    /// Keys (pk) of the first failed items, for the report.
    #[serde(default)]
    pub failed_keys: Vec<String>,
    #[serde(default)]
    pub failed_reasons: Vec<String>,
}

impl Checkpoint {
    pub fn new(run_id: &str, segment: u32) -> Self {
        Self {
            run_id: run_id.to_owned(),
            segment,
            cursor: None,
            pages: 0,
            done: false,
            counters: Counters::default(),
            failed_keys: Vec::new(),
            failed_reasons: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    checkpoint: Checkpoint,
}

pub async fn get_checkpoint(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    segment: u32,
) -> Result<Option<Checkpoint>, AppError> {
    match get(dynamodb, table, key(run_pk(run_id), &segment_sk(segment))).await? {
        Some(item) => Ok(Some(from_item::<CheckpointItem>(item)?.checkpoint)),
        None => Ok(None),
    }
}

/// Writes the checkpoint if nobody else advanced it since we read it
/// (`previous_pages`, `None` for a segment without a checkpoint yet).
/// `false`: another invocation works on this segment (a duplicate delivery).
pub async fn save_checkpoint(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    checkpoint: &Checkpoint,
    previous_pages: Option<u64>,
) -> Result<bool, AppError> {
    let item = to_item(&CheckpointItem {
        pk: run_pk(&checkpoint.run_id),
        sk: segment_sk(checkpoint.segment),
        kind: CHECKPOINT_KIND.into(),
        schema_version: 1,
        checkpoint: checkpoint.clone(),
    })?;
    let request = dynamodb.put_item().table_name(table).set_item(Some(item));
    let request = match previous_pages {
        None => request.condition_expression("attribute_not_exists(pk)"),
        Some(pages) => {
            request.condition_expression("pages = :pages").expression_attribute_values(":pages", n(pages))
        }
    };
    match request.send().await {
        Ok(_) => Ok(true),
        Err(error) if is_condition_failure(&error) => Ok(false),
        Err(error) => Err(AppError::from_sdk("save checkpoint", error)),
    }
}

/// Every segment checkpoint of a run.
pub async fn checkpoints(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
) -> Result<Vec<Checkpoint>, AppError> {
    let items = query(dynamodb, table, run_pk(run_id), Some("SEGMENT#")).await?;
    items.into_iter().map(|item| Ok(from_item::<CheckpointItem>(item)?.checkpoint)).collect()
}

async fn query(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk_prefix: Option<&str>,
) -> Result<Vec<Item>, AppError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut request = dynamodb
            .query()
            .table_name(table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(pk.clone()))
            .set_exclusive_start_key(start);
        request = match sk_prefix {
            Some(prefix) => request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            None => request.key_condition_expression("pk = :pk"),
        };
        let output = request.send().await.map_err(|e| AppError::from_sdk("query migration items", e))?;
        items.extend(output.items.unwrap_or_default());
        start = output.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

// ------------------------------------------------------------------ history

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRef {
    pub version: u32,
    pub name: String,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub run_id: String,
    pub direction: Direction,
    pub from_version: u32,
    pub to_version: u32,
    pub migrations: Vec<MigrationRef>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub segments: u32,
    #[serde(flatten)]
    pub counters: Counters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct HistoryItem {
    pk: String,
    sk: String,
    kind: String,
    schema_version: u32,
    #[serde(flatten)]
    record: HistoryRecord,
}

/// Writes the history entry of a run once (a repeated finalization keeps the first).
pub async fn put_history(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    record: &HistoryRecord,
) -> Result<(), AppError> {
    let item = to_item(&HistoryItem {
        pk: history_pk(),
        sk: format!("RUN#{}", record.run_id),
        kind: HISTORY_KIND.into(),
        schema_version: 1,
        record: record.clone(),
    })?;
    let result = dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if is_condition_failure(&error) => Ok(()),
        Err(error) => Err(AppError::from_sdk("record migration history", error)),
    }
}

/// Every history entry, oldest first.
pub async fn history(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<HistoryRecord>, AppError> {
    let items = query(dynamodb, table, history_pk(), Some("RUN#")).await?;
    items.into_iter().map(|item| Ok(from_item::<HistoryItem>(item)?.record)).collect()
}

// ------------------------------------------------------------------ data items

/// One page of a segment scan.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Item>,
    /// LastEvaluatedKey; `None` when the segment is exhausted.
    pub cursor: Option<BTreeMap<String, String>>,
}

fn cursor_to_key(cursor: &BTreeMap<String, String>) -> Item {
    cursor.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect()
}

fn key_to_cursor(key: Item) -> Result<BTreeMap<String, String>, AppError> {
    key.into_iter()
        .map(|(name, value)| match value {
            AttributeValue::S(text) => Ok((name, text)),
            _ => Err(AppError::Internal(format!("scan cursor attribute {name} is not a string"))),
        })
        .collect()
}

/// One page (at most `limit` items evaluated) of segment `segment` of a
/// parallel scan, strongly consistent, returning only items of `kinds`.
pub async fn scan_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    total_segments: u32,
    cursor: Option<&BTreeMap<String, String>>,
    limit: i32,
    kinds: &[&str],
) -> Result<Page, AppError> {
    let segment = i32::try_from(segment).map_err(|e| AppError::internal("segment", e))?;
    let total = i32::try_from(total_segments).map_err(|e| AppError::internal("total segments", e))?;
    let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!(":k{i}")).collect();
    let mut request = dynamodb
        .scan()
        .table_name(table)
        .segment(segment)
        .total_segments(total)
        .limit(limit)
        .consistent_read(true)
        .set_exclusive_start_key(cursor.map(cursor_to_key))
        .filter_expression(format!("#kind IN ({})", placeholders.join(", ")))
        .expression_attribute_names("#kind", "kind");
    for (placeholder, kind) in placeholders.iter().zip(kinds) {
        request = request.expression_attribute_values(placeholder, s(*kind));
    }
    let output = request.send().await.map_err(|e| AppError::from_sdk("scan segment", e))?;
    Ok(Page {
        items: output.items.unwrap_or_default(),
        cursor: output.last_evaluated_key.map(key_to_cursor).transpose()?,
    })
}

/// The primary key of an item, and its `pk` text for reports.
pub fn item_key(item: &Item) -> Result<(Item, String), AppError> {
    match (item.get("pk"), item.get("sk")) {
        (Some(pk @ AttributeValue::S(text)), Some(sk @ AttributeValue::S(_))) => {
            let key: Item = HashMap::from([("pk".to_owned(), pk.clone()), ("sk".to_owned(), sk.clone())]);
            Ok((key, text.clone()))
        }
        _ => Err(AppError::Internal("item without string pk/sk".into())),
    }
}

pub async fn read_item(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, AppError> {
    get(dynamodb, table, key).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The item changed since it was read (another run, a live write, a
    /// deletion): re-read and re-plan.
    Conflict,
}

/// Writes `plan` onto the item read as `before`: only the attributes the
/// transforms changed are set or removed, conditional on the item still being
/// at the plan's `from` version with the same values in every attribute the
/// transforms changed or derived from. A retry or a duplicate therefore never
/// applies twice, and a concurrent live write is never overwritten.
pub async fn apply_plan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    before: &Item,
    plan: &ItemPlan,
) -> Result<Applied, AppError> {
    let (key, _) = item_key(before)?;
    let mut names: HashMap<String, String> = HashMap::from([("#sv".to_owned(), "schema_version".to_owned())]);
    let mut values: Item = HashMap::from([(":to".to_owned(), n(plan.to))]);
    let mut sets = vec!["#sv = :to".to_owned()];
    let mut removes = Vec::new();
    let mut conditions = vec!["attribute_exists(pk)".to_owned()];
    match before.get("schema_version") {
        Some(version) => {
            conditions.push("#sv = :from".to_owned());
            values.insert(":from".to_owned(), version.clone());
        }
        None => conditions.push("attribute_not_exists(#sv)".to_owned()),
    }

    let mut touched: BTreeSet<&str> = BTreeSet::new();
    for (name, value) in &plan.after {
        if name != "schema_version" && before.get(name) != Some(value) {
            touched.insert(name);
        }
    }
    for name in before.keys() {
        if !plan.after.contains_key(name) {
            touched.insert(name);
        }
    }
    if ["pk", "sk", "kind"].iter().any(|k| touched.contains(k)) {
        return Err(AppError::Internal("a migration may not change pk, sk or kind".into()));
    }
    let guarded: BTreeSet<&str> = touched.iter().copied().chain(plan.reads.iter().copied()).collect();
    for (index, name) in guarded.iter().enumerate() {
        let placeholder = format!("#a{index}");
        names.insert(placeholder.clone(), (*name).to_owned());
        match before.get(*name) {
            Some(old) => {
                conditions.push(format!("{placeholder} = :o{index}"));
                values.insert(format!(":o{index}"), old.clone());
            }
            None => conditions.push(format!("attribute_not_exists({placeholder})")),
        }
        if touched.contains(name) {
            match plan.after.get(*name) {
                Some(new) => {
                    sets.push(format!("{placeholder} = :n{index}"));
                    values.insert(format!(":n{index}"), new.clone());
                }
                None => removes.push(placeholder),
            }
        }
    }
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(update)
        .condition_expression(conditions.join(" AND "))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Applied::Written),
        Err(error) if is_condition_failure(&error) => Ok(Applied::Conflict),
        Err(error) => Err(AppError::from_sdk("migrate item", error)),
    }
}

// ------------------------------------------------------------------ census

/// What a full scan of a table finds: the item count and the tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub items: u64,
    pub tenants: BTreeSet<String>,
}

/// The tenant of a `pk` (`T#<tenant>#...`), if it is a valid tenant id (the
/// platform's own items are not a tenant's).
pub fn tenant_of_pk(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("T#")?;
    let tenant = rest.split('#').next()?;
    crate::tenant::TenantId::parse(tenant).ok().map(|_| tenant)
}

/// Items per census page: small enough that one page never nears a request timeout.
const CENSUS_PAGE: i32 = 1000;

/// Counts every item of `table` and collects its tenants, with a parallel
/// scan projecting only `pk`.
pub async fn census(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segments: u32,
) -> Result<Census, AppError> {
    let segments = segments.max(1);
    let scans = (0..segments).map(|segment| census_segment(dynamodb, table, segment, segments));
    let mut total = Census::default();
    for result in futures::future::join_all(scans).await {
        let part = result?;
        total.items += part.items;
        total.tenants.extend(part.tenants);
    }
    Ok(total)
}

async fn census_segment(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    total: u32,
) -> Result<Census, AppError> {
    let mut census = Census::default();
    let mut start = None;
    loop {
        let output = dynamodb
            .scan()
            .table_name(table)
            .segment(i32::try_from(segment).map_err(|e| AppError::internal("segment", e))?)
            .total_segments(i32::try_from(total).map_err(|e| AppError::internal("segments", e))?)
            .projection_expression("pk")
            .limit(CENSUS_PAGE)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| AppError::from_sdk("count items", e))?;
        for item in output.items.unwrap_or_default() {
            census.items += 1;
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                if let Some(tenant) = tenant_of_pk(pk) {
                    census.tenants.insert(tenant.to_owned());
                }
            }
        }
        start = output.last_evaluated_key;
        if start.is_none() {
            return Ok(census);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_come_from_valid_pk_prefixes_only() {
        assert_eq!(tenant_of_pk("T#acme#USER#a@b.c"), Some("acme"));
        assert_eq!(tenant_of_pk("T#_system#MIGRATE#LOCK"), None);
        assert_eq!(tenant_of_pk("X#acme#"), None);
    }

    #[test]
    fn checkpoint_round_trips_through_an_item() {
        let mut checkpoint = Checkpoint::new("r", 3);
        checkpoint.cursor = Some(BTreeMap::from([("pk".into(), "T#a#X".into()), ("sk".into(), "Y".into())]));
        checkpoint.counters.items_changed = 5;
        checkpoint.counters.changed_by_version.insert("2".into(), 5);
        let item = to_item(&CheckpointItem {
            pk: run_pk("r"),
            sk: segment_sk(3),
            kind: CHECKPOINT_KIND.into(),
            schema_version: 1,
            checkpoint: checkpoint.clone(),
        })
        .unwrap();
        assert_eq!(item.get("sk"), Some(&s("SEGMENT#00003")));
        assert_eq!(from_item::<CheckpointItem>(item).unwrap().checkpoint, checkpoint);
    }
}
