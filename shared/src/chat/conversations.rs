//! Conversations: create, get, list mine, add and remove participants, leave.

use super::{
    ANY_ROLE, ConversationView, MAX_ADDED, MAX_PARTICIPANTS, MAX_TITLE_CHARS, ParticipantView,
    conversation_id, event, not_found, require_person, text, user_id,
};
use crate::app::App;
use crate::auth::Authenticated;
use crate::auth::principal::ADMINISTRATORS;
use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::RequestContext;
use crate::store::chat::{
    self as store, ConversationRecord, ConversationType, ParticipantRecord, ParticipantRole,
};
use crate::store::labels::ChatLabel;
use crate::store::tx::{Tx, TxError};
use crate::store::{self as items, members, tenants};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

/// `POST /v1/conversations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(rename = "type")]
    pub conversation_type: ConversationType,
    /// The other participants (user ids): one for a direct conversation.
    pub participants: Vec<String>,
    /// A group's title (required for groups, refused for direct conversations).
    #[serde(default)]
    pub title: Option<String>,
    /// Group participants who are also conversation admins (the creator always is).
    #[serde(default)]
    pub admins: Vec<String>,
}

/// `POST /v1/conversations/{id}/participants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    pub user_ids: Vec<String>,
    /// Make them conversation admins.
    #[serde(default)]
    pub admin: bool,
}

/// The answer to a create: the conversation, and whether it is new (a
/// direct conversation that exists already is answered as it is).
pub struct Created {
    pub conversation: ConversationView,
    pub created: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The other participants of a create or add: valid, distinct user ids, not the caller.
fn others(field: &str, ids: &[String], me: &str) -> Result<Vec<String>, AppError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (n, raw) in ids.iter().enumerate() {
        let id = user_id(&format!("{field}[{n}]"), raw)?;
        if id == me {
            return Err(AppError::bad_request(
                format!("{field}[{n}]"),
                format!("{field}[{n}]: you are a participant already"),
            ));
        }
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The conditions every chat change carries: the tenant active, the caller
/// an active user (with `admin`, an owner or admin of the tenant).
pub(super) fn caller_checks(
    table: &str,
    who: &Authenticated,
    admin: bool,
) -> Result<Vec<crate::store::Action<ChatLabel>>, AppError> {
    let roles: &[crate::auth::Role] = if admin { &ADMINISTRATORS } else { &ANY_ROLE };
    Ok(vec![
        tenants::require_active_as(table, ChatLabel::Tenant, who.tenant.as_str())?,
        members::require_role_as(table, ChatLabel::Directory, &who.principal, roles)?,
    ])
}

/// The answer to a change cancelled by the caller's own checks: no longer a
/// participant (404, as for anyone else), or [`caller_refusal`].
pub(super) fn participant_refusal(error: &TxError<ChatLabel>) -> Option<AppError> {
    if error.failed(ChatLabel::Caller).is_some() { Some(not_found()) } else { caller_refusal(error) }
}

/// The answer to a failed caller check: the tenant suspended, the caller disabled or demoted.
pub(super) fn caller_refusal(error: &TxError<ChatLabel>) -> Option<AppError> {
    if error.failed(ChatLabel::Tenant).is_some() {
        Some(AppError::forbidden("the tenant is not active"))
    } else if error.failed(ChatLabel::Directory).is_some() {
        Some(AppError::forbidden("your account is not active or lacks the role for this"))
    } else {
        None
    }
}

/// Creates a conversation. One transaction: the conversation, a participant
/// item per participant (the caller first), each other participant an
/// active user of the tenant, the caller still active, the tenant active,
/// the `conversation.created` event. A direct conversation's id is its
/// pair's, so one that exists already is answered (not created twice).
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    request: CreateRequest,
) -> Result<Created, AppError> {
    require_person(who)?;
    let me = who.principal.id.clone();
    let tenant = who.tenant.as_str();
    let others = others("participants", &request.participants, &me)?;
    let (conversation_id, title, admins) = match request.conversation_type {
        ConversationType::Direct => {
            if others.len() != 1 {
                return Err(AppError::bad_request(
                    "participants",
                    "participants: a direct conversation has exactly one other participant",
                ));
            }
            if request.title.is_some() {
                return Err(AppError::bad_request("title", "title: only groups have a title"));
            }
            if !request.admins.is_empty() {
                return Err(AppError::bad_request("admins", "admins: only groups have admins"));
            }
            (store::direct_id(tenant, &me, &others[0]), None, Vec::new())
        }
        ConversationType::Group => {
            if others.len() > MAX_ADDED {
                return Err(AppError::bad_request(
                    "participants",
                    format!("participants: at most {MAX_ADDED} at creation (add more afterwards)"),
                ));
            }
            let title = request
                .title
                .as_deref()
                .ok_or_else(|| AppError::bad_request("title", "title: a group needs a title"))?;
            let title = text("title", title, MAX_TITLE_CHARS)?;
            let mut admins = Vec::new();
            for (n, raw) in request.admins.iter().enumerate() {
                let id = user_id(&format!("admins[{n}]"), raw)?;
                if !others.contains(&id) {
                    return Err(AppError::Unprocessable(format!(
                        "admins[{n}]: must be one of the participants"
                    )));
                }
                admins.push(id);
            }
            (crate::ids::new_id(), Some(title), admins)
        }
    };
    let now = app.now();
    let at = rfc3339(now);
    let table = &app.config.table_name;
    let count = u32::try_from(others.len() + 1).map_err(|e| AppError::internal("participant count", e))?;
    let conversation = ConversationRecord {
        tenant_id: tenant.to_owned(),
        conversation_id: conversation_id.clone(),
        conversation_type: request.conversation_type,
        title,
        created_by: me.clone(),
        created_at: at.clone(),
        seq: 0,
        last_activity_at: at.clone(),
        participant_count: count,
    };
    let creator_role = match request.conversation_type {
        ConversationType::Group => ParticipantRole::Admin,
        ConversationType::Direct => ParticipantRole::Member,
    };
    let participant = |user: &str, role| ParticipantRecord {
        tenant_id: tenant.to_owned(),
        conversation_id: conversation_id.clone(),
        user_id: user.to_owned(),
        role,
        joined_at: at.clone(),
        last_read_seq: 0,
    };
    let mine = participant(&me, creator_role);
    let event = event(
        who,
        ctx,
        &conversation_id,
        "conversation.created",
        now,
        json!({
            "conversation_id": conversation_id,
            "type": request.conversation_type,
            "participants": std::iter::once(&me).chain(&others).collect::<Vec<_>>(),
            "admins": if request.conversation_type == ConversationType::Group {
                std::iter::once(&me).chain(&admins).collect::<Vec<_>>()
            } else { Vec::new() },
        }),
    );
    let mut tx = Tx::new(table, &event)?
        .push(store::insert_conversation(table, &conversation)?)
        .push(store::insert_participant(table, &mine)?);
    for check in caller_checks(table, who, false)? {
        tx = tx.push(check);
    }
    for other in &others {
        let role = if admins.contains(other) { ParticipantRole::Admin } else { ParticipantRole::Member };
        tx = tx
            .push(store::insert_participant(table, &participant(other, role))?)
            .push(members::require_active_user_as(table, ChatLabel::Member, tenant, other)?);
    }
    match tx.commit(&app.clients.dynamodb).await {
        Ok(()) => {}
        Err(error) => {
            if let Some(refusal) = caller_refusal(&error) {
                return Err(refusal);
            }
            let exists = error.condition_failed(ChatLabel::Conversation).is_some_and(|f| f.item.is_some());
            if exists && request.conversation_type == ConversationType::Direct {
                let existing = get(app, who, &conversation_id).await?;
                return Ok(Created { conversation: existing, created: false });
            }
            if error.failed(ChatLabel::Member).is_some() {
                return Err(AppError::Unprocessable(
                    "participants: every participant must be an active user of this tenant".into(),
                ));
            }
            return Err(error.into_app_error());
        }
    }
    tracing::info!(tenant, %conversation_id, participants = count, "conversation created");
    let mut view = ConversationView::of(&conversation, &mine);
    let mut all = vec![ParticipantView::from(&mine)];
    all.extend(others.iter().map(|other| {
        let role = if admins.contains(other) { ParticipantRole::Admin } else { ParticipantRole::Member };
        ParticipantView::from(&participant(other, role))
    }));
    view.participants = Some(all);
    Ok(Created { conversation: view, created: true })
}

/// `GET /v1/conversations/{id}`: the conversation with its participants, to
/// participants only (one consistent Query).
pub async fn get(app: &App, who: &Authenticated, raw_id: &str) -> Result<ConversationView, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let (conversation, participants) = store::conversation_with_participants(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        &conversation_id,
    )
    .await?
    .ok_or_else(not_found)?;
    let me = participants.iter().find(|p| p.user_id == who.principal.id).ok_or_else(not_found)?;
    let mut view = ConversationView::of(&conversation, me);
    view.participants = Some(participants.iter().map(ParticipantView::from).collect());
    Ok(view)
}

/// `GET /v1/conversations?limit=&cursor=`: the caller's conversations, most
/// recent activity first, each with its unread count (its sequence number
/// past the caller's last read one). The caller's participant items come
/// from their inbox in `gsi1`, the conversations from consistent batch reads
/// (100 per request); the order is the conversations' current activity, so
/// a conversation with new activity between two pages moves up. The cursor
/// is the last conversation id of the page before.
pub async fn list(
    app: &App,
    who: &Authenticated,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<ConversationPage, AppError> {
    require_person(who)?;
    let page = crate::paging::PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let mine = store::inbox_of(&app.clients.dynamodb, table, tenant, &who.principal.id).await?;
    let mut views = Vec::with_capacity(mine.len());
    for chunk in mine.chunks(100) {
        let keys = chunk.iter().map(|p| store::conversation_key(tenant, &p.conversation_id)).collect();
        let found = items::get_many(&app.clients.dynamodb, table, keys).await?;
        for (participant, item) in chunk.iter().zip(found) {
            if let Some(item) = item {
                views.push(ConversationView::of(&store::decode_conversation(item)?, participant));
            }
        }
    }
    views.sort_by(|a, b| {
        b.last_activity_at.cmp(&a.last_activity_at).then_with(|| b.conversation_id.cmp(&a.conversation_id))
    });
    let start = match &page.after {
        None => 0,
        Some(after) => {
            views.iter().position(|v| &v.conversation_id == after).map(|at| at + 1).ok_or_else(|| {
                AppError::bad_request("cursor", "cursor: is not a conversation of yours (any more)")
            })?
        }
    };
    let limit = usize::try_from(page.limit).unwrap_or(1);
    let rest: Vec<ConversationView> = views.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let conversations: Vec<ConversationView> = rest.into_iter().take(limit).collect();
    let next_cursor = if more { conversations.last().map(|v| v.conversation_id.clone()) } else { None };
    Ok(ConversationPage { conversations, next_cursor })
}

/// How the caller may manage a conversation's participants: as an owner or
/// admin of the tenant (their directory entry re-checked) or as one of the
/// conversation's admins (their participant item re-checked).
fn manager_checks(
    table: &str,
    who: &Authenticated,
    conversation_id: &str,
) -> Result<Vec<crate::store::Action<ChatLabel>>, AppError> {
    if who.principal.can_manage_users() {
        caller_checks(table, who, true)
    } else {
        let mut checks = caller_checks(table, who, false)?;
        checks.push(store::require_participant(
            table,
            who.tenant.as_str(),
            conversation_id,
            &who.principal.id,
            true,
        )?);
        Ok(checks)
    }
}

/// The answer to a cancelled participant change, from its reasons.
fn participants_refusal(error: TxError<ChatLabel>, target: &str) -> AppError {
    let caller = error.failed(ChatLabel::Caller).map(|failure| failure.item.is_some());
    // Not a participant: the conversation does not exist for them.
    if caller == Some(false) {
        return not_found();
    }
    if let Some(refusal) = caller_refusal(&error) {
        return refusal;
    }
    if let Some(failure) = error.condition_failed(ChatLabel::Conversation) {
        let Some(item) = failure.item.clone() else { return not_found() };
        return match store::decode_conversation(item) {
            Ok(c) if c.conversation_type == ConversationType::Direct => {
                AppError::Conflict("a direct conversation keeps its two participants".into())
            }
            Ok(_) if caller.is_none() => {
                AppError::Conflict(format!("a group has at most {MAX_PARTICIPANTS} participants"))
            }
            Ok(_) => forbidden_manager(),
            Err(error) => error,
        };
    }
    if caller == Some(true) {
        return forbidden_manager();
    }
    if let Some(failure) = error.condition_failed(ChatLabel::Participant) {
        return if failure.item.is_some() {
            AppError::Conflict(format!("{target}: already a participant"))
        } else {
            AppError::NotFound("participant")
        };
    }
    if error.failed(ChatLabel::Member).is_some() {
        return AppError::Unprocessable(format!("{target}: every one must be an active user of this tenant"));
    }
    error.into_app_error()
}

fn forbidden_manager() -> AppError {
    AppError::forbidden("only the conversation's admins and the tenant's owners and admins do this")
}

/// Adds participants to a group. One transaction: their participant items
/// (none a participant yet), each an active user of the tenant, the count
/// within [`MAX_PARTICIPANTS`], the caller's right to do it, the
/// `conversation.participants_added` event.
pub async fn add(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    request: AddRequest,
) -> Result<ConversationView, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let others = others("user_ids", &request.user_ids, &who.principal.id)?;
    if others.is_empty() || others.len() > MAX_ADDED {
        return Err(AppError::bad_request("user_ids", format!("user_ids: 1 to {MAX_ADDED} user ids")));
    }
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let now = app.now();
    let at = rfc3339(now);
    let role = if request.admin { ParticipantRole::Admin } else { ParticipantRole::Member };
    let delta = i64::try_from(others.len()).map_err(|e| AppError::internal("participants", e))?;
    let event = event(
        who,
        ctx,
        &conversation_id,
        "conversation.participants_added",
        now,
        json!({ "conversation_id": conversation_id, "user_ids": others, "role": role }),
    );
    let mut tx = Tx::new(table, &event)?.push(store::change_participant_count(
        table,
        tenant,
        &conversation_id,
        delta,
        MAX_PARTICIPANTS,
        &at,
    )?);
    for check in manager_checks(table, who, &conversation_id)? {
        tx = tx.push(check);
    }
    for other in &others {
        let record = ParticipantRecord {
            tenant_id: tenant.to_owned(),
            conversation_id: conversation_id.clone(),
            user_id: other.clone(),
            role,
            joined_at: at.clone(),
            last_read_seq: 0,
        };
        tx = tx.push(store::insert_participant(table, &record)?).push(members::require_active_user_as(
            table,
            ChatLabel::Member,
            tenant,
            other,
        )?);
    }
    tx.commit(&app.clients.dynamodb).await.map_err(|e| participants_refusal(e, "user_ids"))?;
    tracing::info!(tenant, %conversation_id, added = others.len(), "participants added");
    summary_after(app, who, &conversation_id).await?.ok_or_else(not_found)
}

/// The conversation after a change, with its participants, as the caller
/// sees it (a tenant admin need not be a participant: nothing unread then).
async fn summary_after(
    app: &App,
    who: &Authenticated,
    conversation_id: &str,
) -> Result<Option<ConversationView>, AppError> {
    let found = store::conversation_with_participants(
        &app.clients.dynamodb,
        &app.config.table_name,
        who.tenant.as_str(),
        conversation_id,
    )
    .await?;
    Ok(found.map(|(conversation, participants)| {
        let nobody = ParticipantRecord {
            tenant_id: conversation.tenant_id.clone(),
            conversation_id: conversation.conversation_id.clone(),
            user_id: who.principal.id.clone(),
            role: ParticipantRole::Member,
            joined_at: conversation.created_at.clone(),
            last_read_seq: conversation.seq,
        };
        let me = participants.iter().find(|p| p.user_id == who.principal.id).unwrap_or(&nobody);
        let mut view = ConversationView::of(&conversation, me);
        view.participants = Some(participants.iter().map(ParticipantView::from).collect());
        view
    }))
}

/// Removes `target` from a group (by a conversation admin or a tenant owner
/// or admin), or the caller themself ([`leave`]). One transaction: their
/// participant item deleted, the count, the caller's right, the event.
pub async fn remove(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
    raw_target: &str,
) -> Result<(), AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let target = crate::ids::is_valid_id(raw_target)
        .then(|| raw_target.to_owned())
        .ok_or(AppError::NotFound("participant"))?;
    if target == who.principal.id {
        return leave(app, ctx, who, raw_id).await;
    }
    let checks = manager_checks(&app.config.table_name, who, &conversation_id)?;
    depart(app, ctx, who, &conversation_id, &target, "conversation.participant_removed", checks)
        .await
        .map_err(|e| participants_refusal(e, "user_id"))?;
    tracing::info!(tenant = %who.tenant, %conversation_id, "participant removed");
    Ok(())
}

/// `POST /v1/conversations/{id}/leave`: the caller stops being a participant
/// of a group (a direct conversation keeps its two: 409).
pub async fn leave(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    raw_id: &str,
) -> Result<(), AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let checks = caller_checks(&app.config.table_name, who, false)?;
    let me = &who.principal.id;
    depart(app, ctx, who, &conversation_id, me, "conversation.participant_left", checks).await.map_err(
        |error| {
            // Not a participant (or no such conversation): 404 before anything else.
            if error.condition_failed(ChatLabel::Participant).is_some() {
                not_found()
            } else {
                participants_refusal(error, "user_id")
            }
        },
    )?;
    tracing::info!(tenant = %who.tenant, %conversation_id, "participant left");
    Ok(())
}

/// `user` stops being a participant of a group: one transaction of their
/// participant item deleted, the count, `checks` (the caller's right) and
/// the event `event_type`.
async fn depart(
    app: &App,
    ctx: &RequestContext,
    who: &Authenticated,
    conversation_id: &str,
    user: &str,
    event_type: &str,
    checks: Vec<crate::store::Action<ChatLabel>>,
) -> Result<(), TxError<ChatLabel>> {
    let tenant = who.tenant.as_str();
    let table = &app.config.table_name;
    let now = app.now();
    let departed = event(
        who,
        ctx,
        conversation_id,
        event_type,
        now,
        json!({ "conversation_id": conversation_id, "user_id": user }),
    );
    let mut tx = Tx::new(table, &departed)?
        .push(store::change_participant_count(
            table,
            tenant,
            conversation_id,
            -1,
            MAX_PARTICIPANTS,
            &rfc3339(now),
        )?)
        .push(store::delete_participant(table, tenant, conversation_id, user)?);
    for check in checks {
        tx = tx.push(check);
    }
    tx.commit(&app.clients.dynamodb).await
}
