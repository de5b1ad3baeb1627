//! How accounts, entries and payments are shown in API answers.

use super::Payment;
use crate::error::AppError;
use crate::ledger::{AccountStatus, Balances};
use crate::store::ledger::{AccountRecord, EntryRecord};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub allow_overdraft: bool,
    pub status: AccountStatus,
    /// Minor units `available` may go below zero (0 without overdraft).
    pub overdraft_limit: i64,
    /// `{"type": "tenant"}` or `{"type": "user" | "client", "id"}`.
    pub owner: Value,
    pub balance: BalanceView,
    pub totals: Balances,
    /// Balance shards (1 unless a hot account: its totals are their sum).
    pub shards: u32,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct BalanceView {
    /// credits_posted − debits_posted
    pub posted: i64,
    pub pending_debits: i64,
    pub pending_credits: i64,
    /// posted − pending_debits: what can be spent.
    pub available: i64,
}

impl BalanceView {
    /// The balance of these totals; 409 for a posted balance beyond i64,
    /// which the bounded balance updates never store.
    pub fn of(b: &Balances) -> Result<Self, AppError> {
        let posted = b
            .posted()
            .ok_or_else(|| AppError::Conflict("the posted balance is beyond what the ledger holds".into()))?;
        Ok(BalanceView {
            posted,
            pending_debits: b.debits_pending,
            pending_credits: b.credits_pending,
            available: b.available,
        })
    }
}

impl TryFrom<&AccountRecord> for AccountView {
    type Error = AppError;

    /// Fails (409) only for totals whose posted balance leaves i64, which the
    /// bounded balance updates never store.
    fn try_from(account: &AccountRecord) -> Result<Self, AppError> {
        let b = &account.balances;
        let balance = BalanceView::of(b).map_err(|_| {
            AppError::Conflict(format!(
                "account {}: its posted balance is beyond what the ledger holds; contact support",
                account.account_id
            ))
        })?;
        Ok(AccountView {
            account_id: account.account_id.clone(),
            currency: account.currency.clone(),
            name: account.name.clone(),
            allow_overdraft: account.allow_overdraft,
            status: account.status,
            overdraft_limit: account.overdraft_limit(),
            owner: account.owner.view(),
            balance,
            totals: *b,
            shards: account.shards,
            created_at: account.created_at.clone(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub tx_id: String,
    pub payment_id: String,
    pub movement: String,
    pub currency: String,
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub created_at: String,
}

impl From<EntryRecord> for EntryView {
    fn from(e: EntryRecord) -> Self {
        EntryView {
            tx_id: e.tx_id,
            payment_id: e.payment_id,
            movement: e.movement,
            currency: e.currency,
            debits_pending: e.delta.debits_pending,
            credits_pending: e.delta.credits_pending,
            debits_posted: e.delta.debits_posted,
            credits_posted: e.delta.credits_posted,
            created_at: e.created_at,
        }
    }
}

/// The JSON a payment is shown as.
pub fn payment_view(payment: &Payment) -> Value {
    json!({
        "payment_id": payment.payment_id,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "captured_amount": payment.captured_amount,
        "refunded_amount": payment.refunded_amount,
        "capture_before": payment.capture_before,
        "payer_account_id": payment.payer_account_id,
        "payee_account_id": payment.payee_account_id,
        "splits": (!payment.splits.is_empty()).then(|| payment.splits.iter().map(|leg| json!({
            "account_id": leg.account_id,
            "amount": leg.amount,
            "captured_amount": leg.captured_amount,
            "refunded_amount": leg.refunded_amount,
        })).collect::<Vec<_>>()),
        "description": payment.description,
        "metadata": payment.metadata,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    })
}

pub(super) fn to_json(value: impl Serialize) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(|e| AppError::internal("encode response", e))
}
