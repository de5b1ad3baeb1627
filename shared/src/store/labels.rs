//! The actions of each kind of transaction, as enums. The store labels every
//! write it builds with one of them, and a caller asks a cancelled
//! transaction about an action with the same value (see
//! [`super::tx::TxError::failed`]): a misspelt label, or one from another
//! kind of transaction, does not compile.
//!
//! One enum per family of transactions built from the same store writes:
//! auth and access ([`super::users`], [`super::sessions`], [`super::tenants`],
//! [`super::invitations`], [`super::members`], [`super::clients`]), the idempotent payments API
//! ([`super::ledger`], [`super::payments`], [`super::idempotency`]) and the
//! audit chain ([`super::audit`]).

/// The labels of one kind of transaction.
pub trait Label: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// The label's name in logs and error messages.
    fn name(self) -> &'static str;
}

/// Labels of transactions that carry outbox events (every domain change; see
/// [`super::tx::Tx::new`]).
pub trait OutboxLabel: Label {
    /// The label of the outbox-event puts the transaction builder adds.
    const OUTBOX: Self;
}

/// Register, login, failed login, refresh and revocation; the admin writes
/// (invitations, users, machine clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLabel {
    Outbox,
    /// The user item: inserted on registration, updated by a login or a failure.
    User,
    /// The session (token family): inserted, extended or revoked.
    Session,
    /// The refresh token presented, spent by a rotation.
    Token,
    /// The refresh token issued.
    NewToken,
    /// The tenant item: "exists and is active" (or open to signup), its owner count.
    Tenant,
    /// The invitation consumed by a registration, or created by an admin.
    Invitation,
    /// The target's directory entry (role, status, session epoch).
    Member,
    /// The caller's own directory entry: "still holds a role allowed to do this".
    Caller,
    /// A rate-limit counter's hit (see `crate::ratelimit`).
    RateLimit,
    /// A machine client's entry: created, its secret rotated, revoked.
    Client,
    /// A second-factor challenge (`mfa_token`): spent, or a failure counted.
    Challenge,
    /// A user's personal-data key: created on registration, deleted by an erasure.
    UserKey,
    /// The erasure list's entry of an erased person.
    Erasure,
}

impl Label for AuthLabel {
    fn name(self) -> &'static str {
        match self {
            AuthLabel::Outbox => "outbox",
            AuthLabel::User => "user",
            AuthLabel::Session => "session",
            AuthLabel::Token => "token",
            AuthLabel::NewToken => "new_token",
            AuthLabel::Tenant => "tenant",
            AuthLabel::Invitation => "invitation",
            AuthLabel::Member => "member",
            AuthLabel::Caller => "caller",
            AuthLabel::RateLimit => "rate_limit",
            AuthLabel::Client => "client",
            AuthLabel::Challenge => "challenge",
            AuthLabel::UserKey => "user_key",
            AuthLabel::Erasure => "erasure",
        }
    }
}

impl OutboxLabel for AuthLabel {
    const OUTBOX: Self = AuthLabel::Outbox;
}

/// The idempotent commands of the payments API: account creation and every
/// payment transition with its ledger writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentLabel {
    Outbox,
    /// The completed idempotency record.
    Idempotency,
    /// A new ledger account.
    Account,
    /// The payment item: inserted, or replaced by its next version.
    Payment,
    /// The payment's history item of the transition.
    PaymentEvent,
    LedgerTransaction,
    /// A ledger entry (one per account moved).
    Entry,
    /// The payer account's balance update.
    Payer,
    /// The payee account's balance update.
    Payee,
    /// The caller's own directory entry: "still holds the role that permits
    /// this" (when a role, not owning the account, is what permits it).
    Caller,
    /// The directory entry of the user or client named as a new account's owner.
    Owner,
    /// A hot account's credit shard: created with it, swept, or given its new status.
    Shard,
}

impl Label for PaymentLabel {
    fn name(self) -> &'static str {
        match self {
            PaymentLabel::Outbox => "outbox",
            PaymentLabel::Idempotency => "idempotency",
            PaymentLabel::Account => "account",
            PaymentLabel::Payment => "payment",
            PaymentLabel::PaymentEvent => "payment_event",
            PaymentLabel::LedgerTransaction => "ledger_transaction",
            PaymentLabel::Entry => "entry",
            PaymentLabel::Payer => "payer",
            PaymentLabel::Payee => "payee",
            PaymentLabel::Caller => "caller",
            PaymentLabel::Owner => "owner",
            PaymentLabel::Shard => "shard",
        }
    }
}

impl OutboxLabel for PaymentLabel {
    const OUTBOX: Self = PaymentLabel::Outbox;
}

/// Labels of transactions that complete an idempotency record
/// ([`crate::idempotency::execute`]).
pub trait IdempotentLabel: OutboxLabel {
    /// The label of the completed idempotency record.
    const IDEMPOTENCY: Self;
}

impl IdempotentLabel for PaymentLabel {
    const IDEMPOTENCY: Self = PaymentLabel::Idempotency;
}

/// An append to a tenant's audit chain (no outbox event: see
/// [`super::tx::Tx::without_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditLabel {
    /// An entry at its seq.
    Entry,
    /// The marker of an appended event.
    Marker,
    /// The chain head.
    Head,
    /// A signed checkpoint (its own table).
    Checkpoint,
}

impl Label for AuditLabel {
    fn name(self) -> &'static str {
        match self {
            AuditLabel::Entry => "audit_entry",
            AuditLabel::Marker => "audit_event",
            AuditLabel::Head => "audit_head",
            AuditLabel::Checkpoint => "audit_checkpoint",
        }
    }
}

/// Privacy: consent records, retention policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivacyLabel {
    Outbox,
    /// A consent record (inserted, never changed).
    Consent,
    /// The tenant item: "exists and is active".
    Tenant,
    /// The caller's own directory entry: "still an active user".
    Caller,
    /// A tenant's retention policy.
    Policy,
}

impl Label for PrivacyLabel {
    fn name(self) -> &'static str {
        match self {
            PrivacyLabel::Outbox => "outbox",
            PrivacyLabel::Consent => "consent",
            PrivacyLabel::Tenant => "tenant",
            PrivacyLabel::Caller => "caller",
            PrivacyLabel::Policy => "retention_policy",
        }
    }
}

impl OutboxLabel for PrivacyLabel {
    const OUTBOX: Self = PrivacyLabel::Outbox;
}

/// A data migration's move of an item to another key, with its side updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationLabel {
    /// The item under its new key (which must be free).
    Moved,
    /// The item under its old key: deleted, or updated in place, if still as read.
    Original,
    /// An item the plan changes with it (which must exist).
    Side,
}

impl Label for MigrationLabel {
    fn name(self) -> &'static str {
        match self {
            MigrationLabel::Moved => "moved",
            MigrationLabel::Original => "original",
            MigrationLabel::Side => "side",
        }
    }
}

/// Chat: conversations, their participants and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatLabel {
    Outbox,
    /// The completed idempotency record of a posted message.
    Idempotency,
    /// The conversation item: created, its sequence number or participant count moved.
    Conversation,
    /// A participant's item: inserted, removed, its read state moved.
    Participant,
    /// The caller's own participant item: "still a participant" (or a conversation admin).
    Caller,
    /// The caller's directory entry: "still an active user" (or a tenant admin).
    Directory,
    /// The directory entry of a user being made a participant: "an active user of the tenant".
    Member,
    /// The tenant item: "exists and is active".
    Tenant,
    /// A message: posted, edited, tombstoned.
    Message,
    /// The caller's hit on the per-principal write limit.
    RateLimit,
    /// A media item: requested, completed, deleted, or attached to a post ("ready").
    Media,
}

impl Label for ChatLabel {
    fn name(self) -> &'static str {
        match self {
            ChatLabel::Outbox => "outbox",
            ChatLabel::Idempotency => "idempotency",
            ChatLabel::Conversation => "conversation",
            ChatLabel::Participant => "participant",
            ChatLabel::Caller => "caller",
            ChatLabel::Directory => "directory",
            ChatLabel::Member => "member",
            ChatLabel::Tenant => "tenant",
            ChatLabel::Message => "message",
            ChatLabel::RateLimit => "rate_limit",
            ChatLabel::Media => "media",
        }
    }
}

impl OutboxLabel for ChatLabel {
    const OUTBOX: Self = ChatLabel::Outbox;
}

impl IdempotentLabel for ChatLabel {
    const IDEMPOTENCY: Self = ChatLabel::Idempotency;
}
