//! The double-entry ledger, pure. Every money movement is a transaction whose
//! postings change account totals; per currency, debits equal credits in
//! every transaction, so the sum of all balances stays zero.
//!
//! Accounts are credit-normal: `available = credits_posted − debits_posted −
//! debits_pending`. A payment moves money from a payer to a payee in two
//! phases (pending, then posted), like a card authorization and capture.

pub mod verify;

use serde::{Deserialize, Serialize};

/// An account's state. A frozen account refuses debits and new holds but
/// takes credits and releases; a closed one (only at a zero balance with no
/// pending holds) takes nothing. Accounts stored before states existed have
/// no status and are active. Enforced as conditions of the balance update
/// (`store::ledger::apply_delta`), in the same transaction as the movement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    #[default]
    Active,
    Frozen,
    Closed,
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [AccountStatus::Active, AccountStatus::Frozen, AccountStatus::Closed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Whether an account in this state takes `delta`: a debit (posted or a
    /// new hold) only when active; anything else (credits, releases) unless closed.
    pub fn takes(&self, delta: &Delta) -> bool {
        match self {
            AccountStatus::Active => true,
            AccountStatus::Frozen => !delta.is_debit(),
            AccountStatus::Closed => false,
        }
    }
}

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
    /// The change of the account's available balance; `None` if it does not
    /// fit in i64 (never for amounts the API accepts, at most 10^12 each).
    pub fn available(&self) -> Option<i64> {
        self.credits_posted.checked_sub(self.debits_posted)?.checked_sub(self.debits_pending)
    }

    /// Whether the delta takes money from the account: a posted debit or a
    /// new hold (a release lowers `debits_pending` and is not one).
    pub fn is_debit(&self) -> bool {
        self.debits_posted > 0 || self.debits_pending > 0
    }

    /// The delta's terms as they are stored: `(attribute, change)`, `available` last.
    pub fn terms(&self) -> Option<[(&'static str, i64); 5]> {
        Some([
            ("debits_pending", self.debits_pending),
            ("credits_pending", self.credits_pending),
            ("debits_posted", self.debits_posted),
            ("credits_posted", self.credits_posted),
            ("available", self.available()?),
        ])
    }
}

/// Account totals as stored; `available` is stored too so the overdraft rule
/// can be a DynamoDB condition (conditions cannot do arithmetic).
///
/// Every total stays within i64: each balance update carries a condition that
/// refuses to take a total past `i64::MAX` or `i64::MIN`
/// (`store::ledger::apply_delta`), and the arithmetic here is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub available: i64,
}

impl Balances {
    /// The totals after `delta`; `None` if one would leave i64.
    pub fn apply(&self, delta: &Delta) -> Option<Balances> {
        Some(Balances {
            debits_pending: self.debits_pending.checked_add(delta.debits_pending)?,
            credits_pending: self.credits_pending.checked_add(delta.credits_pending)?,
            debits_posted: self.debits_posted.checked_add(delta.debits_posted)?,
            credits_posted: self.credits_posted.checked_add(delta.credits_posted)?,
            available: self.available.checked_add(delta.available()?)?,
        })
    }

    /// Posted balance (credit-normal); `None` if it does not fit in i64.
    pub fn posted(&self) -> Option<i64> {
        self.credits_posted.checked_sub(self.debits_posted)
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

    /// The payer's delta and one per payee leg of a split payment: leg `i`
    /// was authorized `shares[i].0` and takes `shares[i].1` of this
    /// movement's amount (the shares sum to it; see [`pro_rata`]), so the
    /// transaction stays balanced for any number of legs.
    pub fn split_deltas(&self, shares: &[(i64, i64)]) -> (Delta, Vec<Delta>) {
        let (payer, _) = self.deltas();
        let legs = shares
            .iter()
            .map(|&(authorized, part)| {
                let leg = match *self {
                    Movement::Authorize { .. } => Movement::Authorize { amount: authorized },
                    Movement::Capture { .. } => Movement::Capture { authorized, captured: part },
                    Movement::Void { .. } => Movement::Void { authorized },
                    Movement::Refund { .. } => Movement::Refund { amount: part },
                };
                leg.deltas().1
            })
            .collect();
        (payer, legs)
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

/// Splits `total` over legs in proportion to `weights`, exactly: the
/// largest-remainder rule. Each leg first gets `floor(total * w / W)` (W the
/// sum of the weights); the minor units left over (fewer than the number of
/// legs) go one each to the legs with the largest remainders
/// `total * w mod W`, earlier legs first on a tie. The parts sum to `total`
/// (no minor unit created or lost) and none exceeds its weight when
/// `total <= W`. `None` if `total` is negative or beyond `W`, or a weight
/// is negative, or all are zero with `total > 0`. Arithmetic in i128: exact.
pub fn pro_rata(total: i64, weights: &[i64]) -> Option<Vec<i64>> {
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if total < 0 || i128::from(total) > sum || weights.iter().any(|w| *w < 0) {
        return None;
    }
    if total == 0 {
        return Some(vec![0; weights.len()]);
    }
    let total = i128::from(total);
    let mut parts: Vec<i128> = weights.iter().map(|w| total * i128::from(*w) / sum).collect();
    let mut order: Vec<(usize, i128)> =
        weights.iter().enumerate().map(|(i, w)| (i, total * i128::from(*w) % sum)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let left = total - parts.iter().sum::<i128>();
    for (i, _) in order.into_iter().take(usize::try_from(left).ok()?) {
        parts[i] += 1;
    }
    parts.into_iter().map(|part| i64::try_from(part).ok()).collect()
}

/// The most balance shards an account may have. A hot account (a merchant
/// or fee account credited by every payment) keeps its balance in `shards`
/// items: the account item (shard 0, the only one debited, where the
/// overdraft rule is a condition) and `shards - 1` credit shards. Bounded by
/// the creating transaction (the account, its shards, its event, the
/// idempotency record and two directory checks: 5 + 31 <= 100 actions) and
/// by the balance read, which returns them all in one query (32 items of
/// about 300 bytes: 3 read units).
pub const MAX_SHARDS: u32 = 32;

/// The shard that takes leg `leg`'s credits of payment `payment_id` on an
/// account of `shards` shards: a hash of both (FNV-1a), so concurrent
/// payments into one account spread over its shards, and every movement of
/// one leg (the hold, then its capture or release) meets the same shard.
pub fn credit_shard(payment_id: &str, leg: usize, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in payment_id.bytes().chain(leg.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(shards)).unwrap_or(0)
}

/// The totals of an account kept in shards: their sum; `None` if it leaves i64.
pub fn sum_balances<'a>(parts: impl IntoIterator<Item = &'a Balances>) -> Option<Balances> {
    parts.into_iter().try_fold(Balances::default(), |sum, b| {
        Some(Balances {
            debits_pending: sum.debits_pending.checked_add(b.debits_pending)?,
            credits_pending: sum.credits_pending.checked_add(b.credits_pending)?,
            debits_posted: sum.debits_posted.checked_add(b.debits_posted)?,
            credits_posted: sum.credits_posted.checked_add(b.credits_posted)?,
            available: sum.available.checked_add(b.available)?,
        })
    })
}

/// Debits equal credits, pending and posted alike (summed in i128: exact for
/// any number of i64 deltas up to 2^64).
pub fn is_balanced<'a>(deltas: impl IntoIterator<Item = &'a Delta>) -> bool {
    let (mut pending, mut posted) = (0i128, 0i128);
    for d in deltas {
        pending += i128::from(d.debits_pending) - i128::from(d.credits_pending);
        posted += i128::from(d.debits_posted) - i128::from(d.credits_posted);
    }
    pending == 0 && posted == 0
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
    fn split_movements_balance_and_round_by_largest_remainder() {
        assert_eq!(pro_rata(100, &[1_000, 1_000, 1_000]), Some(vec![34, 33, 33]));
        assert_eq!(pro_rata(10, &[700, 200, 100]), Some(vec![7, 2, 1]));
        assert_eq!(pro_rata(5, &[10, 30]), Some(vec![1, 4]));
        assert_eq!(pro_rata(0, &[0, 0]), Some(vec![0, 0]));
        assert_eq!(pro_rata(3, &[1, 1]), None);
        assert_eq!(pro_rata(-1, &[1]), None);
        let shares = [(700, 467), (300, 200)];
        for movement in [
            Movement::Authorize { amount: 1000 },
            Movement::Capture { authorized: 1000, captured: 667 },
            Movement::Void { authorized: 1000 },
            Movement::Refund { amount: 667 },
        ] {
            let (payer, legs) = movement.split_deltas(&shares);
            assert!(is_balanced(std::iter::once(&payer).chain(&legs)), "{movement:?}");
        }
    }

    proptest::proptest! {
        /// Any amount split over any legs: the parts sum to it exactly, none
        /// is negative or above its leg's weight, and a full amount splits
        /// into the weights themselves.
        #[test]
        fn pro_rata_never_creates_or_loses_a_minor_unit(
            weights in proptest::collection::vec(1i64..=1_000_000_000_000, 1..=45),
            fraction in 0u32..=1_000_000,
        ) {
            let sum: i64 = weights.iter().sum();
            let total = i64::try_from(i128::from(sum) * i128::from(fraction) / 1_000_000).unwrap();
            let parts = pro_rata(total, &weights).unwrap();
            proptest::prop_assert_eq!(parts.iter().sum::<i64>(), total);
            proptest::prop_assert!(parts.iter().zip(&weights).all(|(p, w)| 0 <= *p && p <= w));
            proptest::prop_assert_eq!(pro_rata(sum, &weights).unwrap(), weights.clone());
            let shares: Vec<(i64, i64)> = weights.iter().copied().zip(parts.iter().copied()).collect();
            let (payer, legs) = Movement::Capture { authorized: sum, captured: total }.split_deltas(&shares);
            proptest::prop_assert!(is_balanced(std::iter::once(&payer).chain(&legs)));
        }
    }

    #[test]
    fn credits_spread_over_shards_and_one_leg_keeps_its_shard() {
        assert_eq!(credit_shard("p1", 0, 1), 0);
        let shards: std::collections::BTreeSet<u32> =
            (0..200).map(|i| credit_shard(&format!("payment-{i}"), 0, 8)).collect();
        assert_eq!(shards.len(), 8, "every shard takes credits");
        assert!(shards.iter().all(|s| *s < 8));
        assert_eq!(credit_shard("p1", 3, 8), credit_shard("p1", 3, 8));
        let a = Balances { credits_posted: 5, available: 5, ..Default::default() };
        let b = Balances { debits_posted: 2, available: -2, ..Default::default() };
        let sum = sum_balances([&a, &b]).unwrap();
        assert_eq!((sum.available, sum.posted()), (3, Some(3)));
        let max = Balances { credits_posted: i64::MAX, ..Default::default() };
        assert_eq!(sum_balances([&max, &a]), None);
    }

    #[test]
    fn frozen_accounts_take_credits_and_releases_only() {
        let (payer_hold, payee_hold) = Movement::Authorize { amount: 5 }.deltas();
        let (payer_void, _) = Movement::Void { authorized: 5 }.deltas();
        let (payer_capture, payee_capture) = Movement::Capture { authorized: 5, captured: 3 }.deltas();
        let (payer_refund, payee_refund) = Movement::Refund { amount: 2 }.deltas();
        let frozen = AccountStatus::Frozen;
        assert!(!frozen.takes(&payer_hold) && !frozen.takes(&payer_capture) && !frozen.takes(&payee_refund));
        assert!(frozen.takes(&payee_hold) && frozen.takes(&payer_void) && frozen.takes(&payee_capture));
        assert!(frozen.takes(&payer_refund));
        assert!(!AccountStatus::Closed.takes(&payer_void) && AccountStatus::Active.takes(&payer_hold));
        assert_eq!(AccountStatus::parse("frozen"), Some(frozen));
        assert_eq!(AccountStatus::parse("Frozen"), None);
    }

    #[test]
    fn partial_capture_releases_the_rest_of_the_hold() {
        let start = Balances { credits_posted: 1000, available: 1000, ..Default::default() };
        let (held, _) = Movement::Authorize { amount: 700 }.deltas();
        let after_hold = start.apply(&held).unwrap();
        assert_eq!(after_hold.available, 300);
        let (captured, _) = Movement::Capture { authorized: 700, captured: 500 }.deltas();
        let after_capture = after_hold.apply(&captured).unwrap();
        assert_eq!(after_capture.available, 500);
        assert_eq!(after_capture.debits_pending, 0);
        assert_eq!(after_capture.posted(), Some(500));
    }

    #[test]
    fn arithmetic_that_would_leave_i64_is_refused() {
        let (_, payee) = Movement::Authorize { amount: 1_000_000_000_000 }.deltas();
        let (_, capture) = Movement::Capture { authorized: 1, captured: 1_000_000_000_000 }.deltas();
        let full = Balances { credits_pending: i64::MAX, ..Default::default() };
        assert_eq!(full.apply(&payee), None);
        let rich = Balances { credits_posted: i64::MAX - 5, available: i64::MAX - 5, ..Default::default() };
        assert_eq!(rich.apply(&capture), None);
        let overdrawn = Balances { debits_posted: i64::MAX, credits_posted: -2, ..Default::default() };
        assert_eq!(overdrawn.posted(), None);
        let extreme = Delta { credits_posted: i64::MIN, debits_posted: 1, ..Default::default() };
        assert_eq!(extreme.available(), None);
        assert_eq!(extreme.terms(), None);
        // Four i64::MAX-sized postings sum past i64; the check is exact.
        let debit = Delta { debits_posted: i64::MAX, ..Default::default() };
        let credit = Delta { credits_posted: i64::MAX, ..Default::default() };
        assert!(is_balanced([&debit, &debit, &credit, &credit]));
        assert!(!is_balanced([&debit, &debit, &credit]));
    }
}
