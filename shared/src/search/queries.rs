//! The three searches. Each: the caller a person (machine clients: 403),
//! `q` checked (400), one hit on the caller's search limit for the route
//! (a standalone conditional UpdateItem; 429 with `Retry-After`), the
//! engine's candidates, then the items themselves read consistently to
//! decide what is shown: authorization comes from the caller's stored
//! memberships (their participant items), never from the index alone.

use super::engine::{Engine, TableIndex};
use super::tokens;
use crate::app::App;
use crate::auth::Authenticated;
use crate::chat::conversations::ConversationPage;
use crate::chat::{ConversationView, MessageView, require_person};
use crate::error::AppError;
use crate::paging::PageQuery;
use crate::privacy::personal;
use crate::ratelimit::{self, Counter};
use crate::store::{self as items, chat, members, user_keys, users::UserStatus};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Terms of one query at most, and its length in characters.
pub const MAX_TERMS: usize = 5;
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 50;
/// People whose names a conversation search follows into their conversations.
pub const MAX_NAMED_PEOPLE: usize = 10;

/// `q`: 1 to [`MAX_TERMS`] tokens after normalization, within [`MAX_QUERY_CHARS`].
pub fn terms(raw: Option<&str>) -> Result<Vec<String>, AppError> {
    let invalid = || {
        AppError::bad_request(
            "q",
            format!("q: 1 to {MAX_QUERY_CHARS} characters with 1 to {MAX_TERMS} words (letters or digits)"),
        )
    };
    let raw = raw.ok_or_else(invalid)?;
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid());
    }
    let terms = tokens::tokens(raw);
    if terms.is_empty() || terms.len() > MAX_TERMS { Err(invalid()) } else { Ok(terms) }
}

/// The checks every search starts with; the page asked for.
async fn admit(
    app: &App,
    who: &Authenticated,
    operation: &'static str,
    q: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Vec<String>, PageQuery), AppError> {
    require_person(who)?;
    let terms = terms(q)?;
    let page = PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let counter =
        Counter::per_principal(operation, &who.principal, app.config.rate_limits.searches, app.now());
    ratelimit::consume(app, &counter).await?;
    Ok((terms, page))
}

fn page_size(page: &PageQuery) -> usize {
    usize::try_from(page.limit).unwrap_or(1)
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageHits {
    /// Newest first.
    pub messages: Vec<MessageView>,
    /// For the next page (`?cursor=`), when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/search/messages?q=&limit=&cursor=`: messages with every word of
/// `q`, newest first, in the caller's conversations only. Reads: the
/// caller's inbox (gsi1), the index, then one consistent BatchGetItem of the
/// hits and of the caller's participant items of their conversations; a hit
/// is shown if the caller is a participant now and the message, as stored
/// now, is not deleted and still has every word.
pub async fn messages(
    app: &App,
    who: &Authenticated,
    q: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<MessageHits, AppError> {
    let (terms, page) = admit(app, who, "search_messages", q, limit, cursor).await?;
    let (dynamodb, table, tenant) = (&app.clients.dynamodb, &app.config.table_name, who.tenant.as_str());
    let me = &who.principal.id;
    let mine: HashSet<String> =
        chat::inbox_of(dynamodb, table, tenant, me).await?.into_iter().map(|p| p.conversation_id).collect();
    if mine.is_empty() {
        return Ok(MessageHits { messages: Vec::new(), next_cursor: None });
    }
    let found =
        TableIndex::new(app).messages(tenant, &terms, &mine, page.after.as_deref(), page_size(&page)).await?;
    let conversations: Vec<&str> = {
        let mut seen = Vec::new();
        for hit in &found.hits {
            if !seen.contains(&hit.conversation_id.as_str()) {
                seen.push(hit.conversation_id.as_str());
            }
        }
        seen
    };
    let mut keys: Vec<items::Item> =
        found.hits.iter().map(|h| chat::message_key(tenant, &h.conversation_id, h.seq)).collect();
    keys.extend(conversations.iter().map(|c| chat::participant_key(tenant, c, me)));
    let read = if keys.is_empty() { Vec::new() } else { items::get_many(dynamodb, table, keys).await? };
    let (messages, participants) = read.split_at(found.hits.len().min(read.len()));
    let member_of: HashSet<&str> =
        conversations.iter().zip(participants).filter(|(_, item)| item.is_some()).map(|(c, _)| *c).collect();
    let mut shown = Vec::new();
    for (hit, item) in found.hits.iter().zip(messages) {
        let Some(item) = item.clone() else { continue };
        let message = chat::decode_message(item)?;
        let current = message.deleted_at.is_none()
            && message.message_id == hit.message_id
            && message.body.as_deref().is_some_and(|b| tokens::has_all_tokens(b, &terms));
        if current && member_of.contains(hit.conversation_id.as_str()) {
            shown.push(MessageView::from(message));
        }
    }
    Ok(MessageHits { messages: shown, next_cursor: found.next })
}

/// A person as the directory search shows them.
#[derive(Debug, Clone, Serialize)]
pub struct PersonView {
    pub user_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeoplePage {
    pub users: Vec<PersonView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/search/users?q=&limit=&cursor=`: active people of the caller's
/// tenant with a word of their display name starting with each word of `q`,
/// in user-id order. Reads: the index, one consistent BatchGetItem of the
/// hits' directory entries and keys, one KMS `Decrypt` per person shown (the
/// name is opened from its sealed copy and checked again).
pub async fn people(
    app: &App,
    who: &Authenticated,
    q: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<PeoplePage, AppError> {
    use futures::StreamExt;
    let (terms, page) = admit(app, who, "search_users", q, limit, cursor).await?;
    let (dynamodb, table, tenant) = (&app.clients.dynamodb, &app.config.table_name, who.tenant.as_str());
    let found = TableIndex::new(app).people(tenant, &terms, page.after.as_deref(), page_size(&page)).await?;
    if found.hits.is_empty() {
        return Ok(PeoplePage { users: Vec::new(), next_cursor: found.next });
    }
    let mut keys = Vec::with_capacity(found.hits.len() * 2);
    for user_id in &found.hits {
        keys.push(members::member_key(tenant, user_id));
        keys.push(user_keys::key_of(tenant, user_id));
    }
    let read = items::get_many(dynamodb, table, keys).await?;
    let mut sealed = Vec::new();
    for pair in read.chunks(2) {
        let member =
            pair.first().cloned().flatten().map(items::from_item::<members::MemberRecord>).transpose()?;
        let key =
            pair.get(1).cloned().flatten().map(items::from_item::<user_keys::UserKeyRecord>).transpose()?;
        if let (Some(member), Some(key)) = (member, key)
            && let (UserStatus::Active, Some(name)) = (member.status, member.display_name_sealed.clone())
        {
            sealed.push((member.user_id, key, name));
        }
    }
    let opened: Vec<Result<Option<PersonView>, AppError>> = futures::stream::iter(sealed)
        .map(|(user_id, key, name)| {
            let terms = &terms;
            async move {
                let name = personal::unwrap(app, &key).await?.open(personal::DISPLAY_NAME, &name)?;
                Ok(tokens::has_all_prefixes(&name, terms)
                    .then_some(PersonView { user_id, display_name: name }))
            }
        })
        .buffered(8)
        .collect()
        .await;
    let users = opened.into_iter().filter_map(Result::transpose).collect::<Result<Vec<_>, _>>()?;
    Ok(PeoplePage { users, next_cursor: found.next })
}

/// `GET /v1/search/conversations?q=&limit=&cursor=`: the caller's
/// conversations whose title has a word starting with each word of `q`, or
/// with another participant whose display name has (the people index, its
/// first [`MAX_NAMED_PEOPLE`] matches), most recent activity first, paged
/// like the conversation list. Reads: the caller's inbox (gsi1), the
/// people index and each named person's inbox (gsi1), the caller's
/// conversations (consistent batch reads, 100 a request, as the list does),
/// then the page's participant items of the caller (one consistent
/// BatchGetItem): only a conversation the caller is a participant of now
/// is shown.
pub async fn conversations(
    app: &App,
    who: &Authenticated,
    q: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<ConversationPage, AppError> {
    let (terms, page) = admit(app, who, "search_conversations", q, limit, cursor).await?;
    let (dynamodb, table, tenant) = (&app.clients.dynamodb, &app.config.table_name, who.tenant.as_str());
    let me = &who.principal.id;
    let mine: Vec<String> =
        chat::inbox_of(dynamodb, table, tenant, me).await?.into_iter().map(|p| p.conversation_id).collect();
    if mine.is_empty() {
        return Ok(ConversationPage { conversations: Vec::new(), next_cursor: None });
    }
    let named = TableIndex::new(app).people(tenant, &terms, None, MAX_NAMED_PEOPLE).await?;
    let mut with_named: HashSet<String> = HashSet::new();
    for user_id in named.hits.iter().filter(|u| *u != me) {
        for participant in chat::inbox_of(dynamodb, table, tenant, user_id).await? {
            with_named.insert(participant.conversation_id);
        }
    }
    let mut matched = Vec::new();
    for chunk in mine.chunks(100) {
        let keys = chunk.iter().map(|c| chat::conversation_key(tenant, c)).collect();
        for item in items::get_many(dynamodb, table, keys).await?.into_iter().flatten() {
            let conversation = chat::decode_conversation(item)?;
            let by_title = conversation.title.as_deref().is_some_and(|t| tokens::has_all_prefixes(t, &terms));
            if by_title || with_named.contains(&conversation.conversation_id) {
                matched.push(conversation);
            }
        }
    }
    matched.sort_by(|a, b| {
        b.last_activity_at.cmp(&a.last_activity_at).then_with(|| b.conversation_id.cmp(&a.conversation_id))
    });
    let start = match &page.after {
        None => 0,
        Some(after) => {
            matched.iter().position(|c| &c.conversation_id == after).map(|at| at + 1).ok_or_else(|| {
                AppError::bad_request("cursor", "cursor: is not a conversation of this search (any more)")
            })?
        }
    };
    let size = page_size(&page);
    let rest: Vec<chat::ConversationRecord> = matched.into_iter().skip(start).collect();
    let more = rest.len() > size;
    let page_items: Vec<chat::ConversationRecord> = rest.into_iter().take(size).collect();
    if page_items.is_empty() {
        return Ok(ConversationPage { conversations: Vec::new(), next_cursor: None });
    }
    let keys = page_items.iter().map(|c| chat::participant_key(tenant, &c.conversation_id, me)).collect();
    let participants: HashMap<String, chat::ParticipantRecord> = items::get_many(dynamodb, table, keys)
        .await?
        .into_iter()
        .flatten()
        .map(|item| chat::decode_participant(item).map(|p| (p.conversation_id.clone(), p)))
        .collect::<Result<_, _>>()?;
    let next_cursor = if more { page_items.last().map(|c| c.conversation_id.clone()) } else { None };
    let conversations = page_items
        .iter()
        .filter_map(|c| participants.get(&c.conversation_id).map(|p| ConversationView::of(c, p)))
        .collect();
    Ok(ConversationPage { conversations, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_bounded() {
        assert_eq!(terms(Some("Lunch  at NOON")).unwrap(), ["lunch", "at", "noon"]);
        for bad in [None, Some(""), Some("  ,.; "), Some("a b c d e f"), Some(&*"x".repeat(201))] {
            assert!(terms(bad).is_err(), "{bad:?}");
        }
    }
}
