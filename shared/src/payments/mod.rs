//! Payments, pure: a two-phase payment (authorize, then capture or void;
//! refunds after capture) and the ledger movement of each transition.
//!
//! - [`service`]: the payment commands (authorize, capture, void, refund) and reads
//! - [`accounts`]: ledger accounts (create, change, balances, entries page)
//! - [`expiry`]: the job that releases holds whose capture window passed
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
pub mod views;

use crate::ledger::Movement;
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
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every transition; the optimistic-concurrency guard and
    /// the sequence number of the payment's events.
    pub version: u32,
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
}

impl Payment {
    fn advance(&self, status: PaymentStatus, at: &str) -> Payment {
        Payment { status, updated_at: at.to_owned(), version: self.version + 1, ..self.clone() }
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
        let mut next = self.advance(PaymentStatus::Captured, at);
        next.captured_amount = captured;
        Ok(Transition {
            next,
            movement: Movement::Capture { authorized: self.amount, captured },
            event_type: "payment.captured",
            amount: captured,
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
        })
    }

    pub fn refund(&self, amount: i64, at: &str) -> Result<Transition, TransitionError> {
        if !matches!(self.status, PaymentStatus::Captured | PaymentStatus::PartiallyRefunded) {
            return Err(TransitionError::InvalidState(self.status.as_str(), "refunded"));
        }
        let refundable = self.captured_amount - self.refunded_amount;
        if amount > refundable {
            return Err(TransitionError::Exceeds(format!(
                "refund amount {amount} exceeds the refundable amount {refundable}"
            )));
        }
        let refunded = self.refunded_amount + amount;
        let status = if refunded == self.captured_amount {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        let mut next = self.advance(status, at);
        next.refunded_amount = refunded;
        Ok(Transition { next, movement: Movement::Refund { amount }, event_type: "payment.refunded", amount })
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
            payer_owner: Owner::User("u-a".into()),
            payee_owner: Owner::Tenant,
            description: None,
            metadata: None,
            status: PaymentStatus::Authorized,
            capture_before: Some("t5".into()),
            captured_amount: 0,
            refunded_amount: 0,
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
        let partly = captured.next.refund(200, "t2").unwrap();
        assert_eq!(partly.next.status, PaymentStatus::PartiallyRefunded);
        assert!(matches!(partly.next.refund(401, "t3"), Err(TransitionError::Exceeds(_))));
        let fully = partly.next.refund(400, "t3").unwrap();
        assert_eq!(fully.next.status, PaymentStatus::Refunded);
        assert!(matches!(fully.next.refund(1, "t4"), Err(TransitionError::InvalidState(..))));

        assert!(matches!(p.capture(Some(1001), "t1"), Err(TransitionError::Exceeds(_))));
        assert!(matches!(p.refund(1, "t1"), Err(TransitionError::InvalidState(..))));
        let voided = p.void("t1").unwrap();
        assert_eq!(voided.next.status, PaymentStatus::Voided);
        assert!(matches!(voided.next.capture(None, "t2"), Err(TransitionError::InvalidState(..))));
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
