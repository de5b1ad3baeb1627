//! Presence: whether a participant is online, derived from their live
//! WebSocket connections ([`crate::store::connections`]: `$connect` writes
//! one item per connection with API Gateway's two-hour TTL, `$disconnect`
//! deletes it). Nothing is written per heartbeat: a user is online while
//! they have a connection item that has not expired.
//!
//! `GET /v1/conversations/{id}/presence` answers it for one conversation's
//! participants, to its participants only (anyone else 404, as for the
//! conversation itself): one consistent Query of the conversation's
//! partition (the conversation and its participants, the caller among them:
//! the authorization rides in the read) and one Query of the `gsi1`
//! connection listing per participant, run concurrently. A route of its
//! own rather than a field of get-conversation, so the conversation's read
//! stays one Query and only a client that shows presence pays for it.

use super::{conversation_id, not_found, require_person};
use crate::app::App;
use crate::auth::Authenticated;
use crate::error::AppError;
use crate::store::chat as store;
use crate::store::connections;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::HashMap;

/// Connection listings read at once.
const CONCURRENT_READS: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct Presence {
    pub conversation_id: String,
    /// Every participant, in the conversation's order (by user id).
    pub participants: Vec<ParticipantPresence>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantPresence {
    pub user_id: String,
    /// At least one live WebSocket connection.
    pub online: bool,
}

/// The live connection ids of each of `users` of `tenant` (one Query each,
/// at most [`CONCURRENT_READS`] at a time); users without one are absent.
pub(crate) async fn live_connections(
    app: &App,
    tenant: &str,
    users: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, Vec<String>>, AppError> {
    let now = app.now().unix_timestamp();
    let (dynamodb, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    // The reads as a list first (not a closure in the stream), so the
    // future stays Send for any lifetime.
    let mut reads = Vec::new();
    for user in users {
        reads.push(async move {
            let ids = connections::live_ids(dynamodb, table, tenant, &user, now).await?;
            Ok::<_, AppError>((user, ids))
        });
    }
    let found: Vec<(String, Vec<String>)> =
        futures::stream::iter(reads).buffer_unordered(CONCURRENT_READS).try_collect().await?;
    Ok(found.into_iter().filter(|(_, ids)| !ids.is_empty()).collect())
}

/// `GET /v1/conversations/{id}/presence` (see the module's documentation).
pub async fn of_conversation(app: &App, who: &Authenticated, raw_id: &str) -> Result<Presence, AppError> {
    require_person(who)?;
    let conversation_id = conversation_id(raw_id)?;
    let tenant = who.tenant.as_str();
    let (_, participants) = store::conversation_with_participants(
        &app.clients.dynamodb,
        &app.config.table_name,
        tenant,
        &conversation_id,
    )
    .await?
    .ok_or_else(not_found)?;
    if !participants.iter().any(|p| p.user_id == who.principal.id) {
        return Err(not_found());
    }
    let online = live_connections(app, tenant, participants.iter().map(|p| p.user_id.clone())).await?;
    Ok(Presence {
        participants: participants
            .into_iter()
            .map(|p| ParticipantPresence { online: online.contains_key(&p.user_id), user_id: p.user_id })
            .collect(),
        conversation_id,
    })
}
