//! Conversations, their participants and their messages: one partition per
//! conversation, `T#<tenant>#CONV#<conversation id>`, holding
//!
//! - sk `C` (`kind = conversation`): the conversation: `conversation_type`
//!   (`direct` | `group`), `title` (groups), `created_by`, `created_at`,
//!   `seq` (the sequence number of its last message, 0 before the first),
//!   `last_activity_at`, `participant_count`. A direct conversation's id is
//!   derived from its tenant and its two users ([`direct_id`]), so its insert
//!   (`attribute_not_exists`) is the "at most one per pair" rule.
//! - sk `P#<user id>` (`kind = participant`): one per participant: `role`
//!   (`admin` | `member`), `joined_at`, `last_read_seq`; listed in `gsi1`
//!   under `T#<tenant>#INBOX#<user id>` (sorted by conversation id), the
//!   user's conversations. Removing a participant deletes the item.
//! - sk `S#<seq, 20 digits>` (`kind = message`): the messages in their order:
//!   `message_id`, `seq`, `author_id`, `client_message_id`, `body`,
//!   `created_at`, `edited_at`; a deleted message keeps its place as a
//!   tombstone (`deleted_at`, `deleted_by`, no `body`).
//!
//! - sk `X#<media id>` (`kind = media`): the conversation's media
//!   ([`super::media`]).
//!
//! The sort keys put the conversation, then its participants, then its
//! messages, then its media, so one Query (`sk < S#`) reads a conversation
//! with all its participants.

use super::labels::ChatLabel;
use super::{Action, Expr, Item, Keyed, from_item, key, tenant_pk, value};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const CONVERSATION_KIND: &str = "conversation";
const PARTICIPANT_KIND: &str = "participant";
const MESSAGE_KIND: &str = "message";
const SCHEMA_VERSION: u32 = 1;
const CONVERSATION_SK: &str = "C";
const PARTICIPANT_PREFIX: &str = "P#";
const MESSAGE_PREFIX: &str = "S#";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationType {
    Direct,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub tenant_id: String,
    pub conversation_id: String,
    pub conversation_type: ConversationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// The sequence number of the last message (0: none yet).
    pub seq: u64,
    pub last_activity_at: String,
    pub participant_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantRole {
    /// Adds and removes participants, deletes others' messages.
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    pub tenant_id: String,
    pub conversation_id: String,
    pub user_id: String,
    pub role: ParticipantRole,
    pub joined_at: String,
    /// The last sequence number this participant has read.
    pub last_read_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub tenant_id: String,
    pub conversation_id: String,
    pub seq: u64,
    pub message_id: String,
    pub author_id: String,
    pub client_message_id: String,
    /// Absent on a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// Media ids of the conversation attached to the message (in the order given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

pub(super) fn conversation_pk(tenant: &str, conversation_id: &str) -> String {
    tenant_pk(tenant, &format!("CONV#{conversation_id}"))
}

fn inbox(tenant: &str, user_id: &str) -> String {
    tenant_pk(tenant, &format!("INBOX#{user_id}"))
}

fn message_sk(seq: u64) -> String {
    format!("{MESSAGE_PREFIX}{seq:020}")
}

pub fn conversation_key(tenant: &str, conversation_id: &str) -> Item {
    key(conversation_pk(tenant, conversation_id), CONVERSATION_SK)
}

pub fn participant_key(tenant: &str, conversation_id: &str, user_id: &str) -> Item {
    key(conversation_pk(tenant, conversation_id), &format!("{PARTICIPANT_PREFIX}{user_id}"))
}

pub fn message_key(tenant: &str, conversation_id: &str, seq: u64) -> Item {
    key(conversation_pk(tenant, conversation_id), &message_sk(seq))
}

/// The id of the direct conversation of two users of a tenant: the same for
/// either order, so a second one cannot be created. A UUID (version 8) made
/// of the first 128 bits of SHA-256 over the tenant and the sorted pair.
pub fn direct_id(tenant: &str, a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("direct\n{tenant}\n{first}\n{second}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

pub fn decode_conversation(item: Item) -> Result<ConversationRecord, AppError> {
    from_item(item)
}

pub fn decode_participant(item: Item) -> Result<ParticipantRecord, AppError> {
    from_item(item)
}

pub fn decode_message(item: Item) -> Result<MessageRecord, AppError> {
    from_item(item)
}

/// The insert of a new conversation; fails (label `conversation`, with the
/// existing item) if one has its id: for a direct conversation, the pair's.
pub fn insert_conversation(table: &str, record: &ConversationRecord) -> Result<Action<ChatLabel>, AppError> {
    Keyed::new(
        conversation_pk(&record.tenant_id, &record.conversation_id),
        CONVERSATION_SK,
        CONVERSATION_KIND,
        record,
    )
    .version(SCHEMA_VERSION)
    .insert(table, ChatLabel::Conversation)
}

/// The insert of a participant (label `participant`); fails if they are one already.
pub fn insert_participant(table: &str, record: &ParticipantRecord) -> Result<Action<ChatLabel>, AppError> {
    Keyed::new(
        conversation_pk(&record.tenant_id, &record.conversation_id),
        format!("{PARTICIPANT_PREFIX}{}", record.user_id),
        PARTICIPANT_KIND,
        record,
    )
    .indexed(inbox(&record.tenant_id, &record.user_id), record.conversation_id.clone())
    .version(SCHEMA_VERSION)
    .insert(table, ChatLabel::Participant)
}

/// Removes a participant (label `participant`); fails if they are not one.
pub fn delete_participant(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    user_id: &str,
) -> Result<Action<ChatLabel>, AppError> {
    Action::delete(
        table,
        ChatLabel::Participant,
        participant_key(tenant, conversation_id, user_id),
        Some("attribute_exists(pk)"),
        Expr::default(),
    )
}

/// The caller is a participant (label `caller`); with `admin`, a
/// conversation admin.
pub fn require_participant(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    user_id: &str,
    admin: bool,
) -> Result<Action<ChatLabel>, AppError> {
    let key = participant_key(tenant, conversation_id, user_id);
    if admin {
        Action::condition_check(
            table,
            ChatLabel::Caller,
            key,
            "attribute_exists(pk) AND #role = :admin",
            Expr::default().name("#role", "role").value(":admin", value(ParticipantRole::Admin)?),
        )
    } else {
        Action::condition_check(table, ChatLabel::Caller, key, "attribute_exists(pk)", Expr::default())
    }
}

/// A participant's read state becomes `seq` (label `caller`): the poster of
/// a message has read it; with `forward_only`, only if it is past what they
/// read before (a mark never moves back). Fails if they are not a participant.
pub fn read_up_to(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    user_id: &str,
    seq: u64,
    forward_only: bool,
) -> Result<Action<ChatLabel>, AppError> {
    let condition =
        if forward_only { "attribute_exists(pk) AND last_read_seq < :seq" } else { "attribute_exists(pk)" };
    Action::update(
        table,
        ChatLabel::Caller,
        participant_key(tenant, conversation_id, user_id),
        "SET last_read_seq = :seq",
        Some(condition),
        Expr::default().value(":seq", value(seq)?),
    )
}

/// The conversation has a message `seq` (label `conversation`).
pub fn require_seq_at_least(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    seq: u64,
) -> Result<Action<ChatLabel>, AppError> {
    Action::condition_check(
        table,
        ChatLabel::Conversation,
        conversation_key(tenant, conversation_id),
        "seq >= :seq",
        Expr::default().value(":seq", value(seq)?),
    )
}

/// The conversation's next sequence number: `seq` goes from `expected` to
/// `expected + 1` (label `conversation`), so of two posts that read the same
/// `seq` exactly one commits: one order, no gaps, no duplicates.
pub fn advance_seq(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    expected: u64,
    at: &str,
) -> Result<Action<ChatLabel>, AppError> {
    let next =
        expected.checked_add(1).ok_or_else(|| AppError::Internal("sequence number overflow".into()))?;
    Action::update(
        table,
        ChatLabel::Conversation,
        conversation_key(tenant, conversation_id),
        "SET seq = :next, last_activity_at = :at",
        Some("seq = :expected"),
        Expr::default()
            .value(":next", value(next)?)
            .value(":expected", value(expected)?)
            .value(":at", value(at)?),
    )
}

/// Changes a group's participant count by `delta` (label `conversation`):
/// only a group, and never above `max` participants.
pub fn change_participant_count(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    delta: i64,
    max: u32,
    at: &str,
) -> Result<Action<ChatLabel>, AppError> {
    let mut condition = "conversation_type = :group".to_owned();
    let mut expr = Expr::default()
        .value(":delta", value(delta)?)
        .value(":at", value(at)?)
        .value(":group", value(ConversationType::Group)?);
    if delta > 0 {
        condition.push_str(" AND participant_count <= :room");
        expr = expr.value(":room", value(i64::from(max) - delta)?);
    }
    Action::update(
        table,
        ChatLabel::Conversation,
        conversation_key(tenant, conversation_id),
        "ADD participant_count :delta SET last_activity_at = :at",
        Some(&condition),
        expr,
    )
}

/// The insert of a message at its sequence number (label `message`).
pub fn insert_message(table: &str, record: &MessageRecord) -> Result<Action<ChatLabel>, AppError> {
    Keyed::new(
        conversation_pk(&record.tenant_id, &record.conversation_id),
        message_sk(record.seq),
        MESSAGE_KIND,
        record,
    )
    .version(SCHEMA_VERSION)
    .insert(table, ChatLabel::Message)
}

/// A new body for a message, by its author only, never on a tombstone (label `message`).
pub fn edit_message(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    seq: u64,
    author_id: &str,
    body: &str,
    at: &str,
) -> Result<Action<ChatLabel>, AppError> {
    Action::update(
        table,
        ChatLabel::Message,
        message_key(tenant, conversation_id, seq),
        "SET #body = :body, edited_at = :at",
        Some("attribute_exists(pk) AND author_id = :author AND attribute_not_exists(deleted_at)"),
        Expr::default()
            .name("#body", "body")
            .value(":body", value(body)?)
            .value(":at", value(at)?)
            .value(":author", value(author_id)?),
    )
}

/// Tombstones a message (label `message`): its body goes, its place stays.
/// With `author`, only that author's message.
pub fn tombstone_message(
    table: &str,
    tenant: &str,
    conversation_id: &str,
    seq: u64,
    author: Option<&str>,
    deleted_by: &str,
    at: &str,
) -> Result<Action<ChatLabel>, AppError> {
    let mut condition = "attribute_exists(pk) AND attribute_not_exists(deleted_at)".to_owned();
    let mut expr =
        Expr::default().name("#body", "body").value(":at", value(at)?).value(":by", value(deleted_by)?);
    if let Some(author) = author {
        condition.push_str(" AND author_id = :author");
        expr = expr.value(":author", value(author)?);
    }
    Action::update(
        table,
        ChatLabel::Message,
        message_key(tenant, conversation_id, seq),
        "REMOVE #body SET deleted_at = :at, deleted_by = :by",
        Some(&condition),
        expr,
    )
}

/// A conversation with all its participants, in one consistent Query of its
/// partition up to the messages; `None` if there is no such conversation.
pub async fn conversation_with_participants(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    conversation_id: &str,
) -> Result<Option<(ConversationRecord, Vec<ParticipantRecord>)>, AppError> {
    let items: Vec<Item> = dynamodb
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("pk = :pk AND sk < :messages")
        .expression_attribute_values(":pk", AttributeValue::S(conversation_pk(tenant, conversation_id)))
        .expression_attribute_values(":messages", AttributeValue::S(MESSAGE_PREFIX.to_owned()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("read conversation", e))?;
    let mut conversation = None;
    let mut participants = Vec::new();
    for item in items {
        let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        if sk == CONVERSATION_SK {
            conversation = Some(decode_conversation(item)?);
        } else if sk.starts_with(PARTICIPANT_PREFIX) {
            participants.push(decode_participant(item)?);
        }
    }
    Ok(conversation.map(|c| (c, participants)))
}

/// Every conversation `user_id` participates in, as their participant items
/// (the `gsi1` inbox, all pages; an index read, so eventually consistent).
pub async fn inbox_of(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    user_id: &str,
) -> Result<Vec<ParticipantRecord>, AppError> {
    let items: Vec<Item> = dynamodb
        .query()
        .table_name(table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :inbox")
        .expression_attribute_values(":inbox", AttributeValue::S(inbox(tenant, user_id)))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AppError::from_sdk("list conversations", e))?;
    items.into_iter().map(decode_participant).collect()
}

/// The messages at `(conversation id, seq)` of one tenant, in that order
/// (`None` where there is none): strongly consistent, one BatchGetItem per 100.
pub async fn messages_at(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    wanted: &[(String, u64)],
) -> Result<Vec<Option<MessageRecord>>, AppError> {
    let mut found = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(100) {
        let keys = chunk.iter().map(|(conversation, seq)| message_key(tenant, conversation, *seq)).collect();
        for item in super::get_many(dynamodb, table, keys).await? {
            found.push(item.map(decode_message).transpose()?);
        }
    }
    Ok(found)
}

/// Where a page of messages starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRange {
    /// The newest messages (answered newest first).
    Latest,
    /// Messages with a sequence number below this one, newest first.
    Before(u64),
    /// Messages with a sequence number above this one, oldest first.
    After(u64),
    /// Messages with a sequence number above the first and below the second, oldest first.
    Between(u64, u64),
}

/// One page of messages (strongly consistent), newest first for
/// [`MessageRange::Latest`] and [`MessageRange::Before`], oldest first
/// otherwise, and whether there may be more.
pub async fn messages_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    conversation_id: &str,
    range: MessageRange,
    limit: i32,
) -> Result<(Vec<MessageRecord>, bool), AppError> {
    let (low, high) = match range {
        MessageRange::Latest => (1, u64::MAX),
        MessageRange::Before(seq) => (1, seq.saturating_sub(1)),
        MessageRange::After(seq) => (seq.saturating_add(1), u64::MAX),
        MessageRange::Between(after, before) => (after.saturating_add(1), before.saturating_sub(1)),
    };
    if low > high {
        return Ok((Vec::new(), false));
    }
    let forward = matches!(range, MessageRange::After(_) | MessageRange::Between(..));
    let query = dynamodb
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
        .expression_attribute_values(":pk", AttributeValue::S(conversation_pk(tenant, conversation_id)))
        .expression_attribute_values(":low", AttributeValue::S(message_sk(low)))
        .expression_attribute_values(":high", AttributeValue::S(message_sk(high)))
        .scan_index_forward(forward)
        .limit(limit);
    let output = query.send().await.map_err(|e| AppError::from_sdk("list messages", e))?;
    let messages: Vec<MessageRecord> =
        output.items.unwrap_or_default().into_iter().map(decode_message).collect::<Result<_, _>>()?;
    Ok((messages, output.last_evaluated_key.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_direct_id_in_either_order() {
        let id = direct_id("acme", "u-1", "u-2");
        assert_eq!(id, direct_id("acme", "u-2", "u-1"));
        assert_ne!(id, direct_id("globex", "u-1", "u-2"));
        assert_ne!(id, direct_id("acme", "u-1", "u-3"));
        assert!(crate::ids::is_valid_id(&id), "{id}");
    }

    #[test]
    fn message_keys_sort_by_sequence_number() {
        assert!(message_sk(9) < message_sk(10));
        assert!(message_sk(u64::MAX) > message_sk(u64::MAX - 1));
        assert!(CONVERSATION_SK < PARTICIPANT_PREFIX && PARTICIPANT_PREFIX < MESSAGE_PREFIX);
    }
}
