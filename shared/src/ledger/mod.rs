//! The double-entry ledger, pure. Every money movement is a transaction whose
//! postings change account totals; per currency, debits equal credits in
//! every transaction, so the sum of all balances stays zero.
//!
//! Accounts are credit-normal: `available = credits_posted − debits_posted −
//! debits_pending`. A payment moves money from a payer to a payee in two
//! phases (pending, then posted), like a card authorization and capture.

pub mod verify;

use serde::{Deserialize, Serialize};

/// Changes to one account's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub debits_pending: i64,
    #[serde(default)]
    pub credits_pending: i64,
    #[serde(default)]
    pub debits_posted: i64,
    #[serde(default)]
    pub credits_posted: i64,
}

impl Delta {
    /// The change of the account's available balance.
    pub fn available(&self) -> i64 {
        self.credits_posted - self.debits_posted - self.debits_pending
    }

    pub fn plus(&self, other: &Delta) -> Delta {
        Delta {
            debits_pending: self.debits_pending + other.debits_pending,
            credits_pending: self.credits_pending + other.credits_pending,
            debits_posted: self.debits_posted + other.debits_posted,
            credits_posted: self.credits_posted + other.credits_posted,
        }
    }
}

/// Account totals as stored; `available` is stored too so the overdraft rule
/// can be a DynamoDB condition (conditions cannot do arithmetic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub available: i64,
}

impl Balances {
    pub fn apply(&self, delta: &Delta) -> Balances {
        Balances {
            debits_pending: self.debits_pending + delta.debits_pending,
            credits_pending: self.credits_pending + delta.credits_pending,
            debits_posted: self.debits_posted + delta.debits_posted,
            credits_posted: self.credits_posted + delta.credits_posted,
            available: self.available + delta.available(),
        }
    }

    /// Posted balance (credit-normal).
    pub fn posted(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }
}

/// The kinds of money movement a payment makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Hold `amount` on the payer for the payee.
    Authorize { amount: i64 },
    /// Post `captured` of an `authorized` hold; the rest of the hold is released.
    Capture { authorized: i64, captured: i64 },
    /// Release an `authorized` hold.
    Void { authorized: i64 },
    /// Move `amount` back from the payee to the payer, posted at once.
    Refund { amount: i64 },
}

impl Movement {
    pub fn name(&self) -> &'static str {
        match self {
            Movement::Authorize { .. } => "authorize",
            Movement::Capture { .. } => "capture",
            Movement::Void { .. } => "void",
            Movement::Refund { .. } => "refund",
        }
    }

    /// The (payer, payee) deltas.
    pub fn deltas(&self) -> (Delta, Delta) {
        let zero = Delta::default();
        match *self {
            Movement::Authorize { amount } => {
                (Delta { debits_pending: amount, ..zero }, Delta { credits_pending: amount, ..zero })
            }
            Movement::Capture { authorized, captured } => (
                Delta { debits_pending: -authorized, debits_posted: captured, ..zero },
                Delta { credits_pending: -authorized, credits_posted: captured, ..zero },
            ),
            Movement::Void { authorized } => (
                Delta { debits_pending: -authorized, ..zero },
                Delta { credits_pending: -authorized, ..zero },
            ),
            Movement::Refund { amount } => {
                (Delta { credits_posted: amount, ..zero }, Delta { debits_posted: amount, ..zero })
            }
        }
    }
}

/// Debits equal credits, pending and posted alike.
pub fn is_balanced<'a>(deltas: impl IntoIterator<Item = &'a Delta>) -> bool {
    let total = deltas.into_iter().fold(Delta::default(), |acc, d| acc.plus(d));
    total.debits_pending == total.credits_pending && total.debits_posted == total.credits_posted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_movement_is_balanced_and_conserves_money() {
        for movement in [
            Movement::Authorize { amount: 700 },
            Movement::Capture { authorized: 700, captured: 500 },
            Movement::Void { authorized: 700 },
            Movement::Refund { amount: 200 },
        ] {
            let (payer, payee) = movement.deltas();
            assert!(is_balanced([&payer, &payee]), "{movement:?}");
            assert_eq!(
                payer.credits_posted - payer.debits_posted + payee.credits_posted - payee.debits_posted,
                0
            );
        }
    }

    #[test]
    fn partial_capture_releases_the_rest_of_the_hold() {
        let start = Balances { credits_posted: 1000, available: 1000, ..Default::default() };
        let (held, _) = Movement::Authorize { amount: 700 }.deltas();
        let after_hold = start.apply(&held);
        assert_eq!(after_hold.available, 300);
        let (captured, _) = Movement::Capture { authorized: 700, captured: 500 }.deltas();
        let after_capture = after_hold.apply(&captured);
        assert_eq!(after_capture.available, 500);
        assert_eq!(after_capture.debits_pending, 0);
        assert_eq!(after_capture.posted(), 500);
    }
}
