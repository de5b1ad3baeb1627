//! Chat: conversations between the users of a tenant and their messages in
//! one total order per conversation. Item layouts are in
//! [`crate::store::chat`].
//!
//! - [`conversations`]: create (direct: at most one per pair of users;
//!   group: title, participants, conversation admins), get, list mine by last
//!   activity with unread counts, add and remove participants, leave.
//! - [`media`]: uploads with presigned URLs, completion (checked against
//!   the declaration), download URLs, deletion; attachable to messages.
//! - [`messages`]: post (idempotent by the client's message id; the next
//!   sequence number from a conditional increment on the conversation, in the
//!   same transaction as the message and its event), list by sequence
//!   number, edit, delete (tombstone), mark read.
//! - [`realtime`]: the WebSocket API's routes (connect, send, disconnect).
//! - [`delivery`]: the fan-out of chat events to the participants' live
//!   connections (the deliver function).
//! - [`presence`]: participants online, from their live connections.
//!
//! Who may do what: only participants read or post; anyone else gets 404,
//! the answer for an unknown conversation. Conversation admins (a group's
//! creator and whoever they make admin) and the tenant's owners and admins
//! add and remove participants and delete others' messages. Chat is between
//! people: machine clients are refused (403). Every change is one
//! transaction with its outbox event, the caller's stored state (still a
//! participant, still an active user, the tenant still active) among its
//! conditions. Events name conversations, users and sequence numbers, never
//! a message's text.

pub mod conversations;
pub mod delivery;
pub mod media;
pub mod messages;
pub mod presence;
pub mod realtime;

use crate::auth::Authenticated;
use crate::auth::principal::{PrincipalKind, Role};
use crate::error::AppError;
use crate::store::chat::{ConversationRecord, MessageRecord, ParticipantRecord};
use serde::Serialize;

/// Participants of one group at most.
pub const MAX_PARTICIPANTS: u32 = 256;
/// Participants one request may add (one transaction holds two actions each).
pub const MAX_ADDED: usize = 40;
/// A message's text: characters (Unicode scalar values).
pub const MAX_BODY_CHARS: usize = 4000;
pub const MAX_TITLE_CHARS: usize = 100;

/// Every role: any active user of the tenant chats.
const ANY_ROLE: [Role; 4] = Role::ALL;

/// Chat is between people: a machine client is refused (403).
pub(crate) fn require_person(who: &Authenticated) -> Result<(), AppError> {
    if who.principal.kind == PrincipalKind::Client {
        return Err(AppError::forbidden("conversations are between people, not machine clients"));
    }
    Ok(())
}

/// A conversation id from the path: an id this API hands out (else 404, as unknown).
fn conversation_id(raw: &str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(raw) { Ok(raw.to_owned()) } else { Err(not_found()) }
}

fn not_found() -> AppError {
    AppError::NotFound("conversation")
}

/// A user id named in a request body.
fn user_id(field: &str, raw: &str) -> Result<String, AppError> {
    if crate::ids::is_valid_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(AppError::bad_request(field, format!("{field}: must be a user id")))
    }
}

/// Text a person wrote: trimmed of nothing, but not blank, within `max`
/// characters, without control characters other than newline and tab.
fn text(field: &str, raw: &str, max: usize) -> Result<String, AppError> {
    let count = raw.chars().count();
    let valid = count >= 1
        && count <= max
        && !raw.trim().is_empty()
        && raw.chars().all(|c| !c.is_control() || c == '\n' || c == '\t');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(AppError::bad_request(
            field,
            format!("{field}: 1 to {max} characters, not blank, no control characters but newline and tab"),
        ))
    }
}

/// A chat event: of the conversation's aggregate (so in its order), by the caller.
fn event(
    who: &Authenticated,
    ctx: &crate::http::RequestContext,
    conversation_id: &str,
    event_type: &str,
    at: time::OffsetDateTime,
    payload: serde_json::Value,
) -> crate::outbox::OutboxEvent {
    crate::outbox::OutboxEvent::new(
        &who.tenant,
        "conversation",
        conversation_id,
        event_type,
        at,
        &ctx.correlation_id,
        payload,
    )
    .by(&who.principal.actor())
}

/// Who deletes something of a conversation (a message, media): its own
/// author or uploader, one of the conversation's admins, or an owner or
/// admin of the tenant (moderation: they need not be participants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleter {
    Owner,
    ConversationAdmin,
    TenantAdmin,
}

impl Deleter {
    /// The caller's right to delete what `owner_id` wrote or uploaded, from
    /// their participant item read with it; `None`: no right (403).
    fn of(who: &Authenticated, owner_id: &str, participant: Option<&ParticipantRecord>) -> Option<Self> {
        if owner_id == who.principal.id {
            Some(Self::Owner)
        } else if participant.is_some_and(|p| p.role == crate::store::chat::ParticipantRole::Admin) {
            Some(Self::ConversationAdmin)
        } else if who.principal.can_manage_users() {
            Some(Self::TenantAdmin)
        } else {
            None
        }
    }

    /// The owner the deleted item must still name (its owner deleting it).
    fn owner(self, me: &str) -> Option<&str> {
        (self == Self::Owner).then_some(me)
    }

    /// This right, re-checked by the deletion's own transaction: the caller
    /// still a participant (an admin of the conversation), or still an
    /// owner or admin of the tenant; the tenant active.
    fn checks(
        self,
        table: &str,
        who: &Authenticated,
        conversation_id: &str,
    ) -> Result<Vec<crate::store::Action<crate::store::labels::ChatLabel>>, AppError> {
        let tenant = who.tenant.as_str();
        let me = &who.principal.id;
        let mut checks = Vec::new();
        match self {
            Self::Owner | Self::ConversationAdmin => {
                let admin = self == Self::ConversationAdmin;
                checks.push(crate::store::chat::require_participant(
                    table,
                    tenant,
                    conversation_id,
                    me,
                    admin,
                )?);
                checks.extend(conversations::caller_checks(table, who, false)?);
            }
            Self::TenantAdmin => checks.extend(conversations::caller_checks(table, who, true)?),
        }
        Ok(checks)
    }

    /// Commits a deletion: `tx` holds its event and the tombstone labelled
    /// `tombstone`; this right's [`Self::checks`] ride with them. A failed
    /// check answers as the caller's own checks do; the item found deleted
    /// already (`already_deleted` tells from the item as it was: a concurrent
    /// deletion) leaves nothing to do.
    async fn commit(
        self,
        app: &crate::app::App,
        tx: crate::store::tx::Tx<crate::store::labels::ChatLabel>,
        who: &Authenticated,
        conversation_id: &str,
        tombstone: crate::store::labels::ChatLabel,
        already_deleted: impl FnOnce(crate::store::Item) -> Result<bool, AppError>,
    ) -> Result<(), AppError> {
        let tx = tx.push_all(self.checks(&app.config.table_name, who, conversation_id)?);
        let Err(error) = tx.commit(&app.clients.dynamodb).await else {
            return Ok(());
        };
        if let Some(refusal) = conversations::participant_refusal(&error) {
            return Err(refusal);
        }
        let deleted_meanwhile = match error.condition_failed(tombstone).and_then(|f| f.item.clone()) {
            Some(item) => already_deleted(item)?,
            None => false,
        };
        if deleted_meanwhile { Ok(()) } else { Err(error.into_app_error()) }
    }
}

/// A conversation as its participants see it.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub conversation_id: String,
    #[serde(rename = "type")]
    pub conversation_type: crate::store::chat::ConversationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// The sequence number of the last message (0: none yet).
    pub last_seq: u64,
    pub last_activity_at: String,
    pub participant_count: u32,
    /// The caller's read state and what is left to read.
    pub last_read_seq: u64,
    pub unread_count: u64,
    /// Every participant (`GET` of one conversation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ParticipantView>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    pub user_id: String,
    pub role: crate::store::chat::ParticipantRole,
    pub joined_at: String,
    pub last_read_seq: u64,
}

impl From<&ParticipantRecord> for ParticipantView {
    fn from(p: &ParticipantRecord) -> Self {
        Self {
            user_id: p.user_id.clone(),
            role: p.role,
            joined_at: p.joined_at.clone(),
            last_read_seq: p.last_read_seq,
        }
    }
}

impl ConversationView {
    /// `conversation` as `me` sees it: unread = its sequence number past their
    /// last read one (no message is read to count them).
    pub(crate) fn of(conversation: &ConversationRecord, me: &ParticipantRecord) -> Self {
        Self {
            conversation_id: conversation.conversation_id.clone(),
            conversation_type: conversation.conversation_type,
            title: conversation.title.clone(),
            created_by: conversation.created_by.clone(),
            created_at: conversation.created_at.clone(),
            last_seq: conversation.seq,
            last_activity_at: conversation.last_activity_at.clone(),
            participant_count: conversation.participant_count,
            last_read_seq: me.last_read_seq,
            unread_count: conversation.seq.saturating_sub(me.last_read_seq),
            participants: None,
        }
    }
}

/// A message as participants see it; a deleted one keeps its place without its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub conversation_id: String,
    pub seq: u64,
    pub message_id: String,
    pub client_message_id: String,
    pub author_id: String,
    pub body: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// Media ids of the conversation (`GET .../media/{media_id}` for each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

impl From<MessageRecord> for MessageView {
    fn from(m: MessageRecord) -> Self {
        Self {
            conversation_id: m.conversation_id,
            seq: m.seq,
            message_id: m.message_id,
            client_message_id: m.client_message_id,
            author_id: m.author_id,
            deleted: m.deleted_at.is_some(),
            body: m.body,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            deleted_by: m.deleted_by,
            attachments: m.attachments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_and_printable() {
        assert_eq!(text("body", "hello\nworld\t!", 20).ok().as_deref(), Some("hello\nworld\t!"));
        assert!(text("body", "hello", 10).is_ok());
        assert!(text("body", "héllo ✓", 7).is_ok(), "characters, not bytes");
        for bad in ["", "   ", "\n", "a\u{0}b", "a\u{1b}[31m", "12345678901"] {
            assert!(text("body", bad, 10).is_err(), "{bad:?}");
        }
        assert!(user_id("participants[0]", "not-an-id").is_err());
        assert!(conversation_id("x").is_err());
    }
}
