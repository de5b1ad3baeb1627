//! The one transaction builder. Every state change that touches several items
//! goes through [`Tx`], which always carries the outbox event(s) describing the
//! change, so no write path can forget to publish: the event and the change
//! commit together or not at all. Actions are labelled with their
//! transaction's label enum ([`super::labels`]); cancellation reasons come
//! back as [`Reason`]s.

use super::labels::{Label, OutboxLabel};
use super::{Action, Item};
use crate::error::AppError;
use crate::outbox::OutboxEvent;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use rand::RngExt;
use std::time::Duration;

/// DynamoDB's limit on actions per transaction.
pub const MAX_ACTIONS: usize = 100;
/// Attempts when a transaction is cancelled only by conflicting transactions
/// or throttling.
const CONFLICT_ATTEMPTS: u32 = 4;

pub struct Tx<L> {
    table: String,
    actions: Vec<Action<L>>,
}

/// The cancellation reason code DynamoDB gives a failed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The action's condition was false.
    ConditionalCheckFailed,
    /// Another transaction was writing the same item.
    TransactionConflict,
    /// Any other code (throughput, validation, item collection size), as sent.
    Other(String),
}

impl Reason {
    /// The reason of one action; `None` for an action that did not fail.
    fn of(code: Option<&str>) -> Option<Self> {
        match code.unwrap_or("None") {
            "None" => None,
            "ConditionalCheckFailed" => Some(Reason::ConditionalCheckFailed),
            "TransactionConflict" => Some(Reason::TransactionConflict),
            other => Some(Reason::Other(other.to_owned())),
        }
    }

    /// A reason that says nothing about the items, only that the transaction
    /// could not run now: a conflicting transaction, or throttling
    /// (`ThrottlingError`, `ProvisionedThroughputExceeded`: a hot item or
    /// partition). Worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            Reason::TransactionConflict => true,
            Reason::Other(code) => crate::error::is_throttling(code),
            Reason::ConditionalCheckFailed => false,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reason::ConditionalCheckFailed => "ConditionalCheckFailed",
            Reason::TransactionConflict => "TransactionConflict",
            Reason::Other(code) => code,
        }
    }
}

/// Why one action of a cancelled transaction failed.
#[derive(Debug, Clone)]
pub struct Failure<L> {
    pub label: L,
    pub reason: Reason,
    /// The item as it was (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
    pub item: Option<Item>,
}

#[derive(Debug)]
pub enum TxError<L> {
    /// A condition failed; one entry per failed action.
    Cancelled(Vec<Failure<L>>),
    Other(AppError),
}

impl<L: Label> TxError<L> {
    /// The failure of the action with this label, if that action failed.
    pub fn failed(&self, label: L) -> Option<&Failure<L>> {
        match self {
            TxError::Cancelled(failures) => failures.iter().find(|f| f.label == label),
            TxError::Other(_) => None,
        }
    }

    /// The failure of the action with this label, if its condition was false.
    pub fn condition_failed(&self, label: L) -> Option<&Failure<L>> {
        self.failed(label).filter(|f| f.reason == Reason::ConditionalCheckFailed)
    }

    /// For callers that expect no condition to fail.
    pub fn into_app_error(self) -> AppError {
        match self {
            TxError::Cancelled(failures) => {
                let labels: Vec<_> =
                    failures.iter().map(|f| format!("{}:{}", f.label.name(), f.reason.as_str())).collect();
                AppError::Internal(format!("transaction cancelled: {}", labels.join(", ")))
            }
            TxError::Other(error) => error,
        }
    }
}

impl<L> From<AppError> for TxError<L> {
    fn from(error: AppError) -> Self {
        TxError::Other(error)
    }
}

fn outbox_action<L: OutboxLabel>(table: &str, event: &OutboxEvent) -> Result<Action<L>, AppError> {
    let item = super::outbox::pending_item(event)?;
    Action::put(table, L::OUTBOX, item, Some("attribute_not_exists(pk)"), Default::default())
}

impl<L: OutboxLabel> Tx<L> {
    /// A transaction describing the change `event`.
    pub fn new(table: &str, event: &OutboxEvent) -> Result<Self, AppError> {
        Ok(Self { table: table.to_owned(), actions: vec![outbox_action(table, event)?] })
    }

    /// Another event of the same change (e.g. payment captured + ledger posted).
    pub fn event(mut self, event: &OutboxEvent) -> Result<Self, AppError> {
        self.actions.push(outbox_action(&self.table, event)?);
        Ok(self)
    }
}

impl<L: Label> Tx<L> {
    /// A transaction without an outbox event, only for internal bookkeeping
    /// writes that are not domain state changes and must not re-enter the
    /// outbox: the audit chain appends the events the outbox published, and an
    /// event per append would feed the chain its own appends forever; a hot
    /// account's sweep moves posted credits between its own balance shards
    /// (`super::ledger::sweep`), which changes no balance and no entry. Every
    /// domain change uses [`Tx::new`].
    pub fn without_event(table: &str) -> Self {
        Self { table: table.to_owned(), actions: Vec::new() }
    }

    pub fn push(mut self, action: Action<L>) -> Self {
        self.actions.push(action);
        self
    }

    pub fn push_all(self, actions: impl IntoIterator<Item = Action<L>>) -> Self {
        actions.into_iter().fold(self, Self::push)
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Commits atomically. A cancellation caused only by concurrent
    /// transactions or throttling is retried (bounded, with jittered backoff)
    /// and then reported as 503; a failed condition is returned to the caller
    /// with the old item of the failing action.
    pub async fn commit(self, dynamodb: &aws_sdk_dynamodb::Client) -> Result<(), TxError<L>> {
        if self.actions.len() > MAX_ACTIONS {
            return Err(AppError::Internal(format!("transaction of {} actions", self.actions.len())).into());
        }
        let labels: Vec<L> = self.actions.iter().map(|a| a.label).collect();
        let writes: Vec<_> = self.actions.into_iter().map(|a| a.write).collect();
        for attempt in 1..=CONFLICT_ATTEMPTS {
            // The token makes the SDK's own retries of this request idempotent,
            // so a lost response never turns our own write into a failed condition.
            let result = dynamodb
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .client_request_token(crate::ids::new_id())
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            else {
                return Err(AppError::from_sdk("transaction", error).into());
            };
            let failures = failures(cancelled.cancellation_reasons(), &labels);
            let transient = !failures.is_empty() && failures.iter().all(|f| f.reason.is_transient());
            if !transient {
                return Err(TxError::Cancelled(failures));
            }
            if attempt < CONFLICT_ATTEMPTS {
                let base = 20u64 << attempt;
                let jitter = rand::rng().random_range(0..=base);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
        }
        Err(AppError::Unavailable("too much contention or throttling on the same items; retry".into()).into())
    }
}

/// The failed actions of a cancelled transaction (reasons come one per action,
/// in the order of the actions).
fn failures<L: Label>(
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
    labels: &[L],
) -> Vec<Failure<L>> {
    reasons
        .iter()
        .zip(labels)
        .filter_map(|(reason, &label)| {
            Reason::of(reason.code()).map(|code| Failure {
                label,
                reason: code,
                item: reason.item().cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_typed() {
        assert_eq!(Reason::of(None), None);
        assert_eq!(Reason::of(Some("None")), None);
        assert_eq!(Reason::of(Some("ConditionalCheckFailed")), Some(Reason::ConditionalCheckFailed));
        assert_eq!(Reason::of(Some("TransactionConflict")), Some(Reason::TransactionConflict));
        let other = Reason::of(Some("ThrottlingError")).unwrap();
        assert_eq!(other.as_str(), "ThrottlingError");
        assert!(other.is_transient());
        assert!(Reason::of(Some("ProvisionedThroughputExceeded")).unwrap().is_transient());
        assert!(Reason::TransactionConflict.is_transient());
        assert!(!Reason::ConditionalCheckFailed.is_transient());
        assert!(!Reason::of(Some("ValidationError")).unwrap().is_transient());
    }
}
