//! Messages: post, list, edit, delete, and the read state.
//!
//! **One order per conversation.** A post reads the conversation (its `seq`)
//! and the caller's participant item with its idempotency record (one
//! consistent BatchGetItem), then commits one transaction: `seq` from the
//! value read to the next (a condition), the message at that number, the
//! `message.posted` event, the caller's read state, the completed
//! idempotency record, the tenant and the caller still active, the caller's
//! hit on the write limit. Of posts that read the same `seq`, exactly one
//! commits; the others are cancelled by the condition and post again on the
//! `seq` they then read (a bounded number of times, then 503), so numbers
//! are gapless and never shared. A retry with the same client message id
//! is answered from its idempotency record: it never posts twice.
//!
//! **Attachments.** A post may name completed uploads of its author in the
//! conversation (`attachments`): their media items are read in the same
//! BatchGetItem and each is a condition of the same transaction (still
//! ready), so attaching costs no round trip and a deletion racing the post
//! cancels it (422).

use super::conversations::{caller_checks, participant_refusal};
use super::{MAX_BODY_CHARS, MessageView, conversation_id, event, not_found, require_person, text};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::idempotency::{Idempotent, Outcome, Prepared, execute};
use crate::ratelimit::{self, Counter};
use crate::store::chat::{self as store, MessageRange, MessageRecord};
use crate::store::labels::ChatLabel;
use crate::store::tx::Tx;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;
/// Posts that lose the race for a sequence number and try again, at most.
const POST_ATTEMPTS: u32 = 25;
const OPERATION: &str = "post_message";

/// `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRequest {
    /// The client's id of this message: its idempotency key (a retry with the
    /// same id answers the first post, never a second message).
    pub client_message_id: String,
    pub body: String,
    /// Completed uploads of the author in this conversation ([`super::media`]).
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// `PATCH /v1/conversations/{id}/messages/{seq}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub body: String,
}

/// `POST /v1/conversations/{id}/read`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    #[serde(deserialize_with = "seq_number")]
    pub seq: u64,
}

/// The largest sequence number a request may name: every integer up to it is
/// exact as a JSON number with a fraction part of zero.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A sequence number in a JSON body: an integer from 0 to [`MAX_SEQ`]; as
/// in JSON Schema, `3.0` is the integer 3.
fn seq_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    crate::http::whole_number(&number)
        .filter(|seq| *seq <= MAX_SEQ)
        .ok_or_else(|| serde::de::Error::custom(format!("must be a sequence number from 0 to {MAX_SEQ}")))
}

#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<MessageView>,
    /// For the page before this one (`?before=`), when there may be older messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    /// For the page after this one (`?after=`), when there may be newer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadState {
    pub conversation_id: String,
    pub last_read_seq: u64,
}

/// A client message id: 1 to 64 of `A-Z a-z 0-9 - _ . :` (a UUID fits).
fn client_message_id(raw: &str) -> Result<String, AppError> {
    let valid = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(AppError::bad_request(
            "client_message_id",
            "client_message_id: 1 to 64 of A-Z, a-z, 0-9, '-', '_', '.', ':'",
        ))
    }
}

/// A post's client message id, text and attachments, checked (400 naming the field).
pub fn checked(request: &PostRequest) -> Result<(String, String, Vec<String>), AppError> {
    Ok((
        client_message_id(&request.client_message_id)?,
        text("body", &request.body, MAX_BODY_CHARS)?,
        super::media::attachment_ids(&request.attachments)?,
    ))
}

/// A sequence number from the path or a query (a message that cannot exist: 404).
fn seq_param(raw: &str) -> Result<u64, AppError> {
    raw.parse::<u64>().ok().filter(|seq| *seq >= 1).ok_or(AppError::NotFound("message"))
}

fn seq_query(field: &'static str, raw: Option<&str>) -> Result<Option<u64>, AppError> {
    raw.map(|raw| {
        raw.trim().parse::<u64>().ok().filter(|seq| *seq <= MAX_SEQ).ok_or_else(|| {
            AppError::bad_request(field, format!("{field}: must be a sequence number from 0 to {MAX_SEQ}"))
        })
    })
    .transpose()
}

/// Posts a message (see the module's documentation). Answers 201 with the
/// message, or the first answer again for a retried client message id.
pub async fn post(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_body: serde_json::Value,
) -> Result<Outcome, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let request: PostRequest = crate::http::from_value(raw_body.clone())?;
    let (client_id, body, attachments) = checked(&request)?;
    let idempotent = Idempotent::new(who, OPERATION, client_id.clone(), &conversation_id, &raw_body);
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let limit = Counter::for_write(app, OPERATION, &who.principal);
    for attempt in 1..=POST_ATTEMPTS {
        let mut lost_race = false;
        let mut keys = vec![
            store::conversation_key(tenant, &conversation_id),
            store::participant_key(tenant, &conversation_id, &who.principal.id),
        ];
        keys.extend(super::media::attachment_keys(tenant, &conversation_id, &attachments));
        let result = execute(
            app,
            &idempotent,
            keys,
            |found| {
                let mut found = found.into_iter();
                let conversation = found.next().flatten().ok_or_else(not_found)?;
                found.next().flatten().ok_or_else(not_found)?;
                let conversation = store::decode_conversation(conversation)?;
                let attachment_checks = super::media::attachment_checks(
                    table,
                    tenant,
                    &conversation_id,
                    &who.principal.id,
                    &attachments,
                    found.collect(),
                )?;
                let now = app.now();
                let at = rfc3339(now);
                let seq = conversation
                    .seq
                    .checked_add(1)
                    .ok_or_else(|| AppError::Internal("sequence number overflow".into()))?;
                let message = MessageRecord {
                    tenant_id: tenant.to_owned(),
                    conversation_id: conversation_id.clone(),
                    seq,
                    message_id: crate::ids::new_id(),
                    author_id: who.principal.id.clone(),
                    client_message_id: client_id.clone(),
                    body: Some(body.clone()),
                    created_at: at.clone(),
                    edited_at: None,
                    deleted_at: None,
                    deleted_by: None,
                    attachments: attachments.clone(),
                };
                let posted = event(
                    who,
                    ctx,
                    &conversation_id,
                    "message.posted",
                    now,
                    json!({
                        "conversation_id": conversation_id,
                        "message_id": message.message_id,
                        "seq": seq,
                        "author_id": message.author_id,
                        "attachments": message.attachments,
                    }),
                );
                let mut tx = Tx::new(table, &posted)?
                    .push(store::advance_seq(table, tenant, &conversation_id, conversation.seq, &at)?)
                    .push(store::insert_message(table, &message)?)
                    .push(store::read_up_to(table, tenant, &conversation_id, &who.principal.id, seq, false)?)
                    .push(ratelimit::action(table, ChatLabel::RateLimit, &limit)?);
                for check in caller_checks(table, who, false)?.into_iter().chain(attachment_checks) {
                    tx = tx.push(check);
                }
                let view = serde_json::to_value(MessageView::from(message))
                    .map_err(|e| AppError::internal("encode message", e))?;
                Ok(Prepared { tx, status: 201, body: view })
            },
            |error| {
                if let Some(refusal) = participant_refusal(error) {
                    return Some(refusal);
                }
                if let Some(refused) = ratelimit::refused(error, ChatLabel::RateLimit, &limit, app.now()) {
                    return Some(refused);
                }
                if error.condition_failed(ChatLabel::Media).is_some() {
                    return Some(AppError::Unprocessable(
                        "attachments: an attachment is no longer a completed upload of yours".into(),
                    ));
                }
                if error.condition_failed(ChatLabel::Conversation).is_some() {
                    lost_race = true;
                    return Some(AppError::Unavailable("the conversation is busy; retry".into()));
                }
                None
            },
        )
        .await;
        match result {
            Err(_) if lost_race && attempt < POST_ATTEMPTS => {
                let ceiling = 10u64 << attempt.min(4);
                let pause = rand::rng().random_range(1..=ceiling);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Ok(outcome) => {
                if !outcome.replayed {
                    tracing::info!(tenant, %conversation_id, seq = %outcome.body["seq"], attempt, "message posted");
                }
                return Ok(outcome);
            }
            Err(error) => return Err(error),
        }
    }
    Err(AppError::Unavailable("the conversation is busy; retry".into()))
}

/// The caller is a participant (one consistent GetItem), else 404.
async fn participant(
    app: &App,
    who: &Authenticated,
    conversation_id: &str,
) -> Result<store::ParticipantRecord, AppError> {
    let key = store::participant_key(who.tenant.as_str(), conversation_id, &who.principal.id);
    let item = crate::store::get(&app.clients.dynamodb, &app.config.table_name, key).await?;
    item.map(store::decode_participant).transpose()?.ok_or_else(not_found)
}

/// `GET /v1/conversations/{id}/messages?before=&after=&limit=`: a page of
/// messages, oldest first: the newest ones, those before a sequence number,
/// those after one (to catch up after a gap), or those between two.
/// Participants only.
pub async fn list(
    app: &App,
    who: &Authenticated,
    raw_id: &str,
    before: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<MessagePage, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let limit = crate::paging::page_limit(limit, DEFAULT_PAGE, MAX_PAGE)?;
    let range = match (seq_query("before", before)?, seq_query("after", after)?) {
        (Some(before), Some(after)) => MessageRange::Between(after, before),
        (Some(seq), None) => MessageRange::Before(seq),
        (None, Some(seq)) => MessageRange::After(seq),
        (None, None) => MessageRange::Latest,
    };
    participant(app, who, &conversation_id).await?;
    let (mut records, more) = store::messages_page(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &conversation_id,
        range,
        limit,
    )
    .await?;
    let forward = matches!(range, MessageRange::After(_) | MessageRange::Between(..));
    if !forward {
        records.reverse();
    }
    let (first, last) = (records.first().map(|m| m.seq), records.last().map(|m| m.seq));
    let messages: Vec<MessageView> = records.into_iter().map(MessageView::from).collect();
    Ok(MessagePage {
        next_before: if !forward && more { first } else { None },
        next_after: if forward && more { last } else { None },
        messages,
    })
}

/// `PATCH /v1/conversations/{id}/messages/{seq}`: its author changes its
/// text. One transaction: the message (the author's, not deleted), the
/// author still a participant and an active user, `message.edited`.
pub async fn edit(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_seq: &str,
    request: EditRequest,
) -> Result<(), AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let seq = seq_param(raw_seq)?;
    let body = text("body", &request.body, MAX_BODY_CHARS)?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let now = app.now();
    let me = &who.principal.id;
    let edited = event(
        who,
        ctx,
        &conversation_id,
        "message.edited",
        now,
        json!({ "conversation_id": conversation_id, "seq": seq, "author_id": me }),
    );
    let mut tx = Tx::new(table, &edited)?
        .push(store::edit_message(table, tenant, &conversation_id, seq, me, &body, &rfc3339(now))?)
        .push(store::require_participant(table, tenant, &conversation_id, me, false)?);
    for check in caller_checks(table, who, false)? {
        tx = tx.push(check);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|error| {
        if let Some(refusal) = participant_refusal(&error) {
            return refusal;
        }
        match error.condition_failed(ChatLabel::Message).map(|f| f.item.clone()) {
            Some(None) => AppError::NotFound("message"),
            Some(Some(item)) => match store::decode_message(item) {
                Ok(m) if m.deleted_at.is_some() => AppError::Conflict("the message was deleted".into()),
                Ok(_) => AppError::forbidden("only its author edits a message"),
                Err(error) => error,
            },
            None => error.into_app_error(),
        }
    })?;
    tracing::info!(tenant, %conversation_id, seq, "message edited");
    Ok(())
}

/// `DELETE /v1/conversations/{id}/messages/{seq}`: tombstones a message
/// (its text goes, its place in the order stays): its author, the
/// conversation's admins and the tenant's owners and admins (moderation; they
/// need not be participants). One consistent BatchGetItem (the message, the
/// caller's participant item), then one transaction: the tombstone, the
/// caller's right re-checked, `message.deleted`. Deleting a deleted message
/// changes nothing.
pub async fn delete(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_seq: &str,
) -> Result<(), AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let seq = seq_param(raw_seq)?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let me = &who.principal.id;
    let keys = vec![
        store::message_key(tenant, &conversation_id, seq),
        store::participant_key(tenant, &conversation_id, me),
    ];
    let mut found = crate::store::get_many(&app.clients.dynamodb, table, keys).await?.into_iter();
    let message = found.next().flatten().map(store::decode_message).transpose()?;
    let participant = found.next().flatten().map(store::decode_participant).transpose()?;
    let tenant_admin = who.principal.can_manage_users();
    if participant.is_none() && !tenant_admin {
        return Err(not_found());
    }
    let message = message.ok_or(AppError::NotFound("message"))?;
    if message.deleted_at.is_some() {
        return Ok(());
    }
    let deleter = super::Deleter::of(who, &message.author_id, participant.as_ref()).ok_or_else(|| {
        AppError::forbidden(
            "only its author, the conversation's admins and the tenant's owners and admins delete a message",
        )
    })?;
    let now = app.now();
    let deleted = event(
        who,
        ctx,
        &conversation_id,
        "message.deleted",
        now,
        json!({ "conversation_id": conversation_id, "seq": seq, "author_id": message.author_id }),
    );
    let at = rfc3339(now);
    let tx = Tx::new(table, &deleted)?.push(store::tombstone_message(
        table,
        tenant,
        &conversation_id,
        seq,
        deleter.owner(me),
        me,
        &at,
    )?);
    // Deleted meanwhile: nothing left to do.
    let already_deleted = |item| Ok(store::decode_message(item)?.deleted_at.is_some());
    deleter.commit(app, tx, who, &conversation_id, ChatLabel::Message, already_deleted).await?;
    tracing::info!(tenant, %conversation_id, seq, "message deleted");
    Ok(())
}

/// `POST /v1/conversations/{id}/read {seq}`: the caller has read up to
/// `seq`. One transaction: their read state moves forward (never back: an
/// older `seq` changes nothing), `seq` is a message of the conversation, the
/// `conversation.read` event (read receipts for the other participants).
pub async fn mark_read(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    request: ReadRequest,
) -> Result<ReadState, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let me = &who.principal.id;
    let read = event(
        who,
        ctx,
        &conversation_id,
        "conversation.read",
        app.now(),
        json!({ "conversation_id": conversation_id, "user_id": me, "seq": request.seq }),
    );
    let tx = Tx::new(table, &read)?
        .push(store::read_up_to(table, tenant, &conversation_id, me, request.seq, true)?)
        .push(store::require_seq_at_least(table, tenant, &conversation_id, request.seq)?);
    match tx.commit(&app.clients.dynamodb).await {
        Ok(()) => Ok(ReadState { conversation_id, last_read_seq: request.seq }),
        Err(error) => {
            let Some(failure) = error.failed(ChatLabel::Caller) else {
                return Err(if error.condition_failed(ChatLabel::Conversation).is_some() {
                    AppError::Unprocessable("seq: beyond the conversation's last message".into())
                } else {
                    error.into_app_error()
                });
            };
            let Some(item) = failure.item.clone() else { return Err(not_found()) };
            // Read up to there (or further) already: nothing changes.
            let stored = store::decode_participant(item)?;
            if stored.last_read_seq >= request.seq {
                Ok(ReadState { conversation_id, last_read_seq: stored.last_read_seq })
            } else {
                Err(error.into_app_error())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_message_ids_and_sequence_numbers_are_checked() {
        for ok in ["a", "0190f0c2-7d4e-7000-8000-000000000000", "web:42.1_x"] {
            assert!(client_message_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "é", &"x".repeat(65)] {
            assert!(client_message_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(seq_param("7").ok(), Some(7));
        for bad in ["0", "-1", "x", "1.5", ""] {
            assert!(seq_param(bad).is_err(), "{bad:?}");
        }
        assert!(seq_query("before", Some("x")).is_err());
        assert_eq!(seq_query("before", Some(" 3 ")).ok().flatten(), Some(3));
        assert!(seq_query("before", Some("9007199254740992")).is_err());
        for (body, seq) in [
            (r#"{"seq": 3}"#, Some(3)),
            (r#"{"seq": 3.0}"#, Some(3)),
            (r#"{"seq": 3.5}"#, None),
            (r#"{"seq": -1}"#, None),
            (r#"{"seq": 1e300}"#, None),
            (r#"{"seq": "3"}"#, None),
        ] {
            assert_eq!(serde_json::from_str::<ReadRequest>(body).ok().map(|r| r.seq), seq, "{body}");
        }
    }
}
