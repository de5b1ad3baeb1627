//! Payments, pure: a two-phase payment (authorize, then capture or void;
//! refunds after capture) and the ledger movement of each transition.
//!
//! - [`service`]: the payment commands (authorize, capture, void, refund) and reads
//! - [`accounts`]: ledger accounts (create, change, balances, entries page)
//! - [`expiry`]: the job that releases holds whose capture window passed
//! - [`statements`]: balances as of a time, statements over a period
//! - `movement`: the ledger writes of one transition
//! - [`ownership`]: account owners and who may see and move which money
//! - `input`, [`views`]: request bodies and their checks, answers
//! - [`http`]: the idempotent POST commands as HTTP requests

pub mod accounts;
pub mod expiry;
pub mod http;
mod input;
#[cfg(test)]
mod input_tests;
mod movement;
pub mod ownership;
pub mod service;
pub mod statements;
pub mod views;

use crate::ledger::{Movement, pro_rata};
use ownership::Owner;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Authorized,
    Captured,
    Voided,
    PartiallyRefunded,
    Refunded,
    /// Not captured before `capture_before`: the expiry job released the hold.
    Expired,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub tenant_id: String,
    /// Authorized amount, minor units.
    pub amount: i64,
    pub currency: String,
    pub payer_account_id: String,
    pub payee_account_id: String,
    /// The balance shard of the payee account that takes this payment's
    /// credits (0 unless the payee is a hot account; see [`Leg::shard`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payee_shard: u32,
    /// The accounts' owners when the payment was authorized (owners never
    /// change), so capture, void and refund decide from the payment alone.
    /// Payments stored before ownership existed read as tenant-owned.
    #[serde(default)]
    pub payer_owner: Owner,
    #[serde(default)]
    pub payee_owner: Owner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    pub status: PaymentStatus,
    /// RFC 3339, UTC, whole seconds: the hold can be captured until then (not
    /// at or after it), then the expiry job releases it. Payments authorized
    /// before holds expired have none and never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_before: Option<String>,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    /// The payees of a split payment (the first is also `payee_account_id`);
    /// empty for a payment to one payee.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<Leg>,
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every transition; the optimistic-concurrency guard and
    /// the sequence number of the payment's events.
    pub version: u32,
}

/// One payee of a split payment: its account (and owner, fixed when the
/// payment was authorized), its part of the authorization, and how much of
/// it has been captured and refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub account_id: String,
    pub owner: Owner,
    pub amount: i64,
    #[serde(default)]
    pub captured_amount: i64,
    #[serde(default)]
    pub refunded_amount: i64,
    /// The balance shard of a hot payee account that takes this leg's
    /// credits (its hold and its capture: one shard), chosen when the
    /// payment is authorized ([`crate::ledger::credit_shard`]); 0 otherwise.
    /// Debits of the leg (refunds) go to shard 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shard: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The most payees of one split payment. Every leg is two actions of the
/// transaction that moves it (its entry and its balance update); beside them
/// a movement has at most nine: two outbox events, the payment, its history
/// item, the ledger transaction, the idempotency record, the caller's role
/// check, the payer's entry and balance update. DynamoDB allows 100 actions:
/// 9 + 2 × 45 = 99.
pub const MAX_SPLITS: usize = 45;

/// Which legs a refund takes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundFrom {
    /// Every leg, in proportion to what each can still refund ([`pro_rata`]).
    ProRata,
    /// One leg (a payment to one payee has one: its payee account).
    Leg(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("payment is {0}; it cannot be {1}")]
    InvalidState(&'static str, &'static str),
    #[error("{0}")]
    Exceeds(String),
    #[error("authorization expired: it could be captured until {0}")]
    Expired(String),
}

/// A transition: the payment after it and the ledger movement it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub next: Payment,
    pub movement: Movement,
    pub event_type: &'static str,
    pub amount: i64,
    /// Per payee leg (in the payment's order): its authorized amount and its
    /// part of `amount` (see [`Movement::split_deltas`]).
    pub shares: Vec<(i64, i64)>,
}

impl Payment {
    fn advance(&self, status: PaymentStatus, at: &str) -> Payment {
        Payment { status, updated_at: at.to_owned(), version: self.version + 1, ..self.clone() }
    }

    /// The payee legs: the splits, or the one payee with the payment's totals.
    pub fn legs(&self) -> Vec<Leg> {
        if !self.splits.is_empty() {
            return self.splits.clone();
        }
        vec![Leg {
            account_id: self.payee_account_id.clone(),
            owner: self.payee_owner.clone(),
            amount: self.amount,
            captured_amount: self.captured_amount,
            refunded_amount: self.refunded_amount,
            shard: self.payee_shard,
        }]
    }

    /// Every leg's authorized amount, as its part of a movement of it all.
    pub fn authorized_shares(&self) -> Vec<(i64, i64)> {
        self.legs().iter().map(|leg| (leg.amount, leg.amount)).collect()
    }

    /// `next` with its legs after the movement of `parts` (one per leg) into
    /// captured or refunded amounts; a single-payee payment keeps no splits.
    fn with_legs(&self, mut next: Payment, parts: &[i64], refund: bool) -> Payment {
        for (leg, part) in next.splits.iter_mut().zip(parts) {
            if refund {
                leg.refunded_amount += part;
            } else {
                leg.captured_amount = *part;
            }
        }
        next
    }

    /// Whether the hold's capture window has passed at `at` (RFC 3339, UTC,
    /// as [`crate::clock::rfc3339`] writes it: such texts order as their times).
    pub fn is_expired_at(&self, at: &str) -> bool {
        self.capture_before.as_deref().is_some_and(|deadline| deadline <= at)
    }

    /// Capture `amount` (default: all) of the authorization; the rest is released.
    pub fn capture(&self, amount: Option<i64>, at: &str) -> Result<Transition, TransitionError> {
        if self.status != PaymentStatus::Authorized {
            return Err(TransitionError::InvalidState(self.status.as_str(), "captured"));
        }
        if let Some(deadline) = self.capture_before.as_ref().filter(|_| self.is_expired_at(at)) {
            return Err(TransitionError::Expired(deadline.clone()));
        }
        let captured = amount.unwrap_or(self.amount);
        if captured > self.amount {
            return Err(TransitionError::Exceeds(format!(
                "capture amount {captured} exceeds the authorized amount {}",
                self.amount
            )));
        }
        let weights: Vec<i64> = self.legs().iter().map(|leg| leg.amount).collect();
        let parts = pro_rata(captured, &weights)
            .ok_or_else(|| TransitionError::Exceeds(format!("capture amount {captured} cannot be split")))?;
        let mut next = self.advance(PaymentStatus::Captured, at);
        next.captured_amount = captured;
        Ok(Transition {
            next: self.with_legs(next, &parts, false),
            movement: Movement::Capture { authorized: self.amount, captured },
            event_type: "payment.captured",
            amount: captured,
            shares: weights.into_iter().zip(parts).collect(),
        })
    }

    pub fn void(&self, at: &str) -> Result<Transition, TransitionError> {
        if self.status != PaymentStatus::Authorized {
            return Err(TransitionError::InvalidState(self.status.as_str(), "voided"));
        }
        Ok(Transition {
            next: self.advance(PaymentStatus::Voided, at),
            movement: Movement::Void { authorized: self.amount },
            event_type: "payment.voided",
            amount: self.amount,
            shares: self.authorized_shares(),
        })
    }

    /// The expiry job's release of a hold whose capture window has passed.
    pub fn expire(&self, at: &str) -> Result<Transition, TransitionError> {
        if self.status != PaymentStatus::Authorized || !self.is_expired_at(at) {
            return Err(TransitionError::InvalidState(self.status.as_str(), "expired"));
        }
        Ok(Transition {
            next: self.advance(PaymentStatus::Expired, at),
            movement: Movement::Void { authorized: self.amount },
            event_type: "payment.expired",
            amount: self.amount,
            shares: self.authorized_shares(),
        })
    }

    /// Refund `amount` from one leg or from all of them pro rata.
    pub fn refund(&self, amount: i64, from: &RefundFrom, at: &str) -> Result<Transition, TransitionError> {
        if !matches!(self.status, PaymentStatus::Captured | PaymentStatus::PartiallyRefunded) {
            return Err(TransitionError::InvalidState(self.status.as_str(), "refunded"));
        }
        let refundable = self.captured_amount - self.refunded_amount;
        if amount > refundable {
            return Err(TransitionError::Exceeds(format!(
                "refund amount {amount} exceeds the refundable amount {refundable}"
            )));
        }
        let legs = self.legs();
        let left: Vec<i64> = legs.iter().map(|leg| leg.captured_amount - leg.refunded_amount).collect();
        let parts = match from {
            RefundFrom::ProRata => pro_rata(amount, &left),
            RefundFrom::Leg(account_id) => {
                let index = legs.iter().position(|leg| leg.account_id == *account_id).ok_or_else(|| {
                    TransitionError::Exceeds("account_id: the account is not a payee of this payment".into())
                })?;
                (amount <= left[index])
                    .then(|| (0..legs.len()).map(|i| if i == index { amount } else { 0 }).collect())
            }
        }
        .ok_or_else(|| {
            TransitionError::Exceeds(format!("refund amount {amount} exceeds what the payee can refund"))
        })?;
        let refunded = self.refunded_amount + amount;
        let status = if refunded == self.captured_amount {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        let mut next = self.advance(status, at);
        next.refunded_amount = refunded;
        Ok(Transition {
            next: self.with_legs(next, &parts, true),
            movement: Movement::Refund { amount },
            event_type: "payment.refunded",
            amount,
            shares: legs.iter().map(|leg| leg.amount).zip(parts).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorized(amount: i64) -> Payment {
        Payment {
            payment_id: "p".into(),
            tenant_id: "acme".into(),
            amount,
            currency: "USD".into(),
            payer_account_id: "a".into(),
            payee_account_id: "b".into(),
            payee_shard: 0,
            payer_owner: Owner::User("u-a".into()),
            payee_owner: Owner::Tenant,
            description: None,
            metadata: None,
            status: PaymentStatus::Authorized,
            capture_before: Some("t5".into()),
            captured_amount: 0,
            refunded_amount: 0,
            splits: Vec::new(),
            created_at: "t0".into(),
            updated_at: "t0".into(),
            version: 1,
        }
    }

    #[test]
    fn the_status_machine() {
        let p = authorized(1000);
        let captured = p.capture(Some(600), "t1").unwrap();
        assert_eq!(captured.next.status, PaymentStatus::Captured);
        assert_eq!(captured.next.version, 2);
        assert_eq!(captured.movement, Movement::Capture { authorized: 1000, captured: 600 });
        assert!(matches!(captured.next.capture(None, "t2"), Err(TransitionError::InvalidState(..))));
        assert!(matches!(captured.next.void("t2"), Err(TransitionError::InvalidState(..))));
        let partly = captured.next.refund(200, &RefundFrom::ProRata, "t2").unwrap();
        assert_eq!(partly.next.status, PaymentStatus::PartiallyRefunded);
        assert!(matches!(
            partly.next.refund(401, &RefundFrom::ProRata, "t3"),
            Err(TransitionError::Exceeds(_))
        ));
        let fully = partly.next.refund(400, &RefundFrom::Leg("b".into()), "t3").unwrap();
        assert_eq!(fully.next.status, PaymentStatus::Refunded);
        assert!(matches!(
            fully.next.refund(1, &RefundFrom::ProRata, "t4"),
            Err(TransitionError::InvalidState(..))
        ));

        assert!(matches!(p.capture(Some(1001), "t1"), Err(TransitionError::Exceeds(_))));
        assert!(matches!(p.refund(1, &RefundFrom::ProRata, "t1"), Err(TransitionError::InvalidState(..))));
        let voided = p.void("t1").unwrap();
        assert_eq!(voided.next.status, PaymentStatus::Voided);
        assert!(matches!(voided.next.capture(None, "t2"), Err(TransitionError::InvalidState(..))));
    }

    #[test]
    fn a_split_payment_captures_and_refunds_every_leg_exactly() {
        let leg = |id: &str, amount| Leg {
            account_id: id.into(),
            owner: Owner::Tenant,
            amount,
            captured_amount: 0,
            refunded_amount: 0,
            shard: 0,
        };
        let p = Payment { splits: vec![leg("b", 700), leg("fee", 200), leg("c", 100)], ..authorized(1000) };
        let captured = p.capture(Some(999), "t1").unwrap();
        assert_eq!(captured.shares, vec![(700, 699), (200, 200), (100, 100)]);
        let parts: Vec<i64> = captured.next.splits.iter().map(|l| l.captured_amount).collect();
        assert_eq!(parts, [699, 200, 100]);
        let fee = captured.next.refund(50, &RefundFrom::Leg("fee".into()), "t2").unwrap();
        assert_eq!(fee.shares, vec![(700, 0), (200, 50), (100, 0)]);
        assert!(fee.next.refund(151, &RefundFrom::Leg("fee".into()), "t3").is_err());
        assert!(fee.next.refund(1, &RefundFrom::Leg("x".into()), "t3").is_err());
        let rest = fee.next.refund(949, &RefundFrom::ProRata, "t3").unwrap();
        assert_eq!(rest.shares, vec![(700, 699), (200, 150), (100, 100)]);
        assert_eq!(rest.next.status, PaymentStatus::Refunded);
        assert!(rest.next.splits.iter().all(|l| l.captured_amount == l.refunded_amount));
    }

    #[test]
    fn a_hold_expires_at_its_deadline_not_before() {
        let p = authorized(1000);
        assert!(p.capture(None, "t4").is_ok());
        assert!(matches!(p.expire("t4"), Err(TransitionError::InvalidState(..))));
        assert_eq!(p.capture(None, "t5"), Err(TransitionError::Expired("t5".into())));
        let expired = p.expire("t5").unwrap();
        assert_eq!((expired.next.status, expired.event_type), (PaymentStatus::Expired, "payment.expired"));
        assert_eq!(expired.movement, Movement::Void { authorized: 1000 });
        assert!(matches!(expired.next.expire("t6"), Err(TransitionError::InvalidState(..))));
        let legacy = Payment { capture_before: None, ..authorized(10) };
        assert!(legacy.capture(None, "t9").is_ok() && legacy.expire("t9").is_err());
    }
}
