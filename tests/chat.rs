// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Chat against the emulator: conversations (direct, one per pair; groups
//! with admins), messages in one gapless order per conversation under
//! concurrent posters, idempotent posts by client message id, read state and
//! unread counts, participants only (404 for anyone else, removed ones
//! included), edits and tombstones with their events, bad input named.

use caas::auth::Role;
use caas_tests::api::{Api, api_event, user_id as sub};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

struct Chat<'a> {
    api: Api<'a>,
}

impl<'a> Chat<'a> {
    async fn create(&self, token: &str, body: Value) -> (u16, Value) {
        parts(
            &self
                .api
                .route("CreateConversationFunction", "POST /v1/conversations", &[], &[], token, Some(&body))
                .await,
        )
    }

    async fn get(&self, token: &str, id: &str) -> (u16, Value) {
        parts(
            &self
                .api
                .route(
                    "GetConversationFunction",
                    "GET /v1/conversations/{id}",
                    &[("id", id)],
                    &[],
                    token,
                    None,
                )
                .await,
        )
    }

    async fn list(&self, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
        parts(
            &self
                .api
                .route("ListConversationsFunction", "GET /v1/conversations", &[], query, token, None)
                .await,
        )
    }

    async fn post_raw(&self, token: &str, id: &str, client_id: &str, text: &str) -> Response<Body> {
        let body = json!({"client_message_id": client_id, "body": text});
        self.api
            .route(
                "PostMessageFunction",
                "POST /v1/conversations/{id}/messages",
                &[("id", id)],
                &[],
                token,
                Some(&body),
            )
            .await
    }

    async fn post(&self, token: &str, id: &str, text: &str) -> (u16, Value) {
        parts(&self.post_raw(token, id, &uuid::Uuid::new_v4().to_string(), text).await)
    }

    async fn messages(&self, token: &str, id: &str, query: &[(&str, &str)]) -> (u16, Value) {
        parts(
            &self
                .api
                .route(
                    "ListMessagesFunction",
                    "GET /v1/conversations/{id}/messages",
                    &[("id", id)],
                    query,
                    token,
                    None,
                )
                .await,
        )
    }

    async fn read(&self, token: &str, id: &str, seq: u64) -> (u16, Value) {
        let body = json!({"seq": seq});
        parts(
            &self
                .api
                .route(
                    "MarkReadFunction",
                    "POST /v1/conversations/{id}/read",
                    &[("id", id)],
                    &[],
                    token,
                    Some(&body),
                )
                .await,
        )
    }

    async fn add(&self, token: &str, id: &str, users: &[&str]) -> (u16, Value) {
        let body = json!({"user_ids": users});
        parts(
            &self
                .api
                .route(
                    "AddParticipantsFunction",
                    "POST /v1/conversations/{id}/participants",
                    &[("id", id)],
                    &[],
                    token,
                    Some(&body),
                )
                .await,
        )
    }

    async fn remove(&self, token: &str, id: &str, user: &str) -> u16 {
        self.api
            .route(
                "RemoveParticipantFunction",
                "DELETE /v1/conversations/{id}/participants/{user_id}",
                &[("id", id), ("user_id", user)],
                &[],
                token,
                None,
            )
            .await
            .status()
            .as_u16()
    }

    async fn leave(&self, token: &str, id: &str) -> u16 {
        self.api
            .route(
                "LeaveConversationFunction",
                "POST /v1/conversations/{id}/leave",
                &[("id", id)],
                &[],
                token,
                None,
            )
            .await
            .status()
            .as_u16()
    }

    async fn edit(&self, token: &str, id: &str, seq: u64, text: &str) -> u16 {
        let body = json!({"body": text});
        let seq = seq.to_string();
        self.api
            .route(
                "EditMessageFunction",
                "PATCH /v1/conversations/{id}/messages/{seq}",
                &[("id", id), ("seq", &seq)],
                &[],
                token,
                Some(&body),
            )
            .await
            .status()
            .as_u16()
    }

    async fn delete(&self, token: &str, id: &str, seq: u64) -> u16 {
        let seq = seq.to_string();
        self.api
            .route(
                "DeleteMessageFunction",
                "DELETE /v1/conversations/{id}/messages/{seq}",
                &[("id", id), ("seq", &seq)],
                &[],
                token,
                None,
            )
            .await
            .status()
            .as_u16()
    }
}

fn chat_events(events: Vec<caas::outbox::OutboxEvent>) -> Vec<caas::outbox::OutboxEvent> {
    events.into_iter().filter(|e| e.aggregate_type == "conversation").collect()
}

#[tokio::test]
async fn conversations_are_created_once_per_pair_listed_by_activity_with_unread_counts() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob = chat.api.token("acme", "bob@acme.example").await;
    let cy = chat.api.token("acme", "cy@acme.example").await;
    let (ada_id, bob_id, cy_id) = (sub(&ada), sub(&bob), sub(&cy));

    // Direct: one per pair, whoever asks first.
    let (status, direct) = chat.create(&ada, json!({"type": "direct", "participants": [bob_id]})).await;
    assert_eq!(status, 201, "{direct}");
    assert_eq!(direct["type"], "direct");
    assert_eq!(direct["participant_count"], 2);
    let direct_id = direct["conversation_id"].as_str().unwrap().to_owned();
    let (status, again) = chat.create(&bob, json!({"type": "direct", "participants": [ada_id]})).await;
    assert_eq!(status, 200, "the pair's conversation exists: {again}");
    assert_eq!(again["conversation_id"], direct_id.as_str());
    let direct_items = scan_raw_items(&stack, "kind = :c", &[(":c", "conversation")]).await;
    assert_eq!(direct_items.len(), 1, "one conversation item for the pair");

    // A group: the creator is its admin.
    let (status, group) = chat
        .create(
            &ada,
            json!({"type": "group", "title": "Launch", "participants": [bob_id, cy_id], "admins": [cy_id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["conversation_id"].as_str().unwrap().to_owned();
    let (status, seen) = chat.get(&bob, &group_id).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["title"], "Launch");
    let roles: BTreeMap<String, String> = seen["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user_id"].as_str().unwrap().to_owned(), p["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        roles,
        BTreeMap::from([
            (ada_id.clone(), "admin".into()),
            (bob_id.clone(), "member".into()),
            (cy_id.clone(), "admin".into())
        ])
    );

    // Activity: three messages in the group, then one in the direct conversation.
    for n in 1..=3 {
        assert_eq!(chat.post(&ada, &group_id, &format!("group {n}")).await.0, 201);
    }
    let (status, posted) = chat.post(&ada, &direct_id, "hi bob").await;
    assert_eq!(status, 201, "{posted}");

    stack.round_trips.reset();
    let (status, page) = chat.list(&bob, &[]).await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<(&str, u64)> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["conversation_id"].as_str().unwrap(), c["unread_count"].as_u64().unwrap()))
        .collect();
    // The same second: the order between equal activity times is by id; the unread counts are what matter here.
    let unread: BTreeMap<&str, u64> = listed.iter().copied().collect();
    assert_eq!(unread, BTreeMap::from([(group_id.as_str(), 3), (direct_id.as_str(), 1)]));
    assert_eq!(
        stack.round_trips.operations("DynamoDB"),
        ["Query", "BatchGetItem"],
        "the inbox and the conversations: no message is read to count"
    );
    // The poster has read their own messages.
    let (_, adas) = chat.list(&ada, &[]).await;
    assert!(adas["conversations"].as_array().unwrap().iter().all(|c| c["unread_count"] == 0), "{adas}");

    // Later activity comes first.
    stack.clock.advance(time::Duration::seconds(5));
    assert_eq!(chat.post(&cy, &group_id, "newest").await.0, 201);
    let (_, page) = chat.list(&bob, &[("limit", "1")]).await;
    assert_eq!(page["conversations"][0]["conversation_id"], group_id.as_str());
    assert_eq!(page["conversations"][0]["unread_count"], 4);
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, second) = chat.list(&bob, &[("limit", "1"), ("cursor", &cursor)]).await;
    assert_eq!(second["conversations"][0]["conversation_id"], direct_id.as_str());
    assert!(second.get("next_cursor").is_none(), "{second}");

    // Read state: forward only, within the conversation's messages.
    let (status, state) = chat.read(&bob, &group_id, 3).await;
    assert_eq!((status, state["last_read_seq"].as_u64()), (200, Some(3)), "{state}");
    let (status, state) = chat.read(&bob, &group_id, 1).await;
    assert_eq!((status, state["last_read_seq"].as_u64()), (200, Some(3)), "never back: {state}");
    assert_eq!(chat.read(&bob, &group_id, 5).await.0, 422, "beyond the last message");
    let (_, seen) = chat.get(&bob, &group_id).await;
    assert_eq!((seen["last_seq"].as_u64(), seen["unread_count"].as_u64()), (Some(4), Some(1)), "{seen}");

    // Events: ids and sequence numbers, never a message's text or an email.
    let events = chat_events(stored_events(&stack, "acme").await);
    let types: BTreeSet<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, BTreeSet::from(["conversation.created", "message.posted", "conversation.read"]));
    for event in &events {
        let text = event.payload.to_string();
        assert!(!text.contains("group ") && !text.contains("hi bob") && !text.contains('@'), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posters_get_one_gapless_order() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let mut tokens = Vec::new();
    for n in 0..4 {
        tokens.push(chat.api.token("acme", &format!("poster{n}@acme.example")).await);
    }
    let others: Vec<String> = tokens[1..].iter().map(|t| sub(t)).collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    let id = chat.api.group(&tokens[0], "busy", &others).await;
    const EACH: usize = 6;

    // Every poster posts its messages one after another, all posters at once.
    let posters = tokens.iter().enumerate().map(|(p, token)| {
        let (chat, id) = (&chat, &id);
        async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                let (status, message) = chat.post(token, id, &format!("p{p} m{n}")).await;
                assert_eq!(status, 201, "{message}");
                seqs.push(message["seq"].as_u64().unwrap());
            }
            seqs
        }
    });
    let answered: Vec<Vec<u64>> = futures::future::join_all(posters).await;
    for seqs in &answered {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one poster's messages keep their order: {seqs:?}");
    }
    let mut all: Vec<u64> = answered.concat();
    all.sort_unstable();
    let total = (tokens.len() * EACH) as u64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>(), "every number once, no gaps");

    // Every participant reads the same order, oldest first.
    let mut orders = Vec::new();
    for token in &tokens {
        let (status, page) = chat.messages(token, &id, &[("limit", "100")]).await;
        assert_eq!(status, 200, "{page}");
        let order: Vec<(u64, String)> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(order.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
        orders.push(order);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "the same order for everyone");
    for p in 0..tokens.len() {
        let mine: Vec<&str> =
            orders[0].iter().map(|(_, b)| b.as_str()).filter(|b| b.starts_with(&format!("p{p} "))).collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("p{p} m{n}")).collect();
        assert_eq!(mine, expected, "each message once, in its poster's order");
    }

    // One message.posted event per number.
    let posted: Vec<u64> = chat_events(stored_events(&stack, "acme").await)
        .iter()
        .filter(|e| e.event_type == "message.posted")
        .map(|e| e.payload["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = posted.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=total).collect::<Vec<_>>());

    // Paging by sequence number, both ways.
    let (_, latest) = chat.messages(&tokens[1], &id, &[("limit", "5")]).await;
    let seqs = |page: &Value| -> Vec<u64> {
        page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs(&latest), (total - 4..=total).collect::<Vec<_>>());
    let before = latest["next_before"].as_u64().expect("older messages");
    assert_eq!(before, total - 4);
    let (_, older) = chat.messages(&tokens[1], &id, &[("limit", "5"), ("before", &before.to_string())]).await;
    assert_eq!(seqs(&older), (total - 9..=total - 5).collect::<Vec<_>>());
    let (_, after) = chat.messages(&tokens[1], &id, &[("limit", "5"), ("after", "3")]).await;
    assert_eq!(seqs(&after), (4..=8).collect::<Vec<_>>());
    assert_eq!(after["next_after"].as_u64(), Some(8));
    let (_, between) = chat.messages(&tokens[1], &id, &[("after", "3"), ("before", "7")]).await;
    assert_eq!(seqs(&between), [4, 5, 6]);
    let (_, none) = chat.messages(&tokens[1], &id, &[("after", "3"), ("before", "4")]).await;
    assert_eq!(seqs(&none), Vec::<u64>::new());
    let (_, tail) = chat.messages(&tokens[1], &id, &[("after", &(total - 2).to_string())]).await;
    assert_eq!(seqs(&tail), [total - 1, total]);
    assert!(tail.get("next_after").is_none(), "{tail}");
}

#[tokio::test]
async fn a_post_is_one_read_and_one_transaction_and_a_retry_never_posts_twice() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob = chat.api.token("acme", "bob@acme.example").await;
    let id = chat.api.group(&ada, "retries", &[&sub(&bob)]).await;

    stack.round_trips.reset();
    let first = chat.post_raw(&ada, &id, "web-1", "once").await;
    let (status, message) = parts(&first);
    assert_eq!(status, 201, "{message}");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(message["seq"], 1);
    assert_eq!(message["client_message_id"], "web-1");

    stack.round_trips.reset();
    let retry = chat.post_raw(&ada, &id, "web-1", "once").await;
    assert_eq!(retry.status(), 201);
    assert_eq!(header(&retry, "idempotent-replayed"), Some("true"));
    assert_eq!(parts(&retry).1, message, "the first answer again");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem"], "a replay is the read");
    assert_eq!(chat.post_raw(&ada, &id, "web-1", "something else").await.status(), 422);

    // Concurrent duplicates: one message.
    let duplicates = (0..5).map(|_| chat.post_raw(&ada, &id, "web-2", "twice?"));
    let answers = futures::future::join_all(duplicates).await;
    let seqs: BTreeSet<u64> =
        answers.iter().filter(|r| r.status() == 201).map(|r| parts(r).1["seq"].as_u64().unwrap()).collect();
    assert!(answers.iter().all(|r| matches!(r.status().as_u16(), 201 | 409)), "201 or in progress");
    assert_eq!(seqs, BTreeSet::from([2]), "one message for one client message id");

    // Another caller's key is their own.
    let (status, bobs) = parts(&chat.post_raw(&bob, &id, "web-1", "mine").await);
    assert_eq!((status, bobs["seq"].as_u64()), (201, Some(3)), "{bobs}");

    let (_, page) = chat.messages(&bob, &id, &[]).await;
    let bodies: Vec<&str> =
        page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["once", "twice?", "mine"]);
    let stored = scan_raw_items(&stack, "kind = :m", &[(":m", "message")]).await;
    assert_eq!(stored.len(), 3);
}

#[tokio::test]
async fn only_participants_see_a_conversation_and_removed_ones_read_nothing_new() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob = chat.api.token("acme", "bob@acme.example").await;
    let cy = chat.api.token("acme", "cy@acme.example").await;
    let dan = chat.api.token("acme", "dan@acme.example").await;
    let owner = chat.api.treasurer("acme").await;
    let foreign = chat.api.invited("globex", "admin@globex.example", Role::Admin).await;
    let (bob_id, cy_id, dan_id) = (sub(&bob), sub(&cy), sub(&dan));
    let id = chat.api.group(&ada, "team", &[&bob_id, &cy_id]).await;
    assert_eq!(chat.post(&ada, &id, "first").await.0, 201);

    // Someone else of the tenant, and an admin of another tenant: as if it did not exist.
    for outsider in [&dan, &foreign] {
        assert_eq!(chat.get(outsider, &id).await.0, 404);
        assert_eq!(chat.messages(outsider, &id, &[]).await.0, 404);
        assert_eq!(chat.post(outsider, &id, "let me in").await.0, 404);
        assert_eq!(chat.read(outsider, &id, 1).await.0, 404);
        assert_eq!(chat.edit(outsider, &id, 1, "x").await, 404);
        assert_eq!(chat.leave(outsider, &id).await, 404);
    }
    assert_eq!(chat.delete(&dan, &id, 1).await, 404);
    assert_eq!(chat.add(&dan, &id, &[&sub(&owner)]).await.0, 404);
    assert_eq!(chat.get(&dan, &uuid::Uuid::new_v4().to_string()).await.0, 404, "unknown: the same answer");
    assert_eq!(chat.get(&dan, "not-an-id").await.0, 404);
    let (_, dans) = chat.list(&dan, &[]).await;
    assert_eq!(dans["conversations"], json!([]));

    // A member is no conversation admin.
    assert_eq!(chat.add(&bob, &id, &[&dan_id]).await.0, 403);
    assert_eq!(chat.remove(&bob, &id, &cy_id).await, 403);

    // The conversation's admin removes bob: he reads nothing any more, new or old.
    assert_eq!(chat.remove(&ada, &id, &bob_id).await, 204);
    assert_eq!(chat.post(&ada, &id, "after bob").await.0, 201);
    assert_eq!(chat.get(&bob, &id).await.0, 404);
    assert_eq!(chat.messages(&bob, &id, &[("after", "1")]).await.0, 404);
    assert_eq!(chat.post(&bob, &id, "still here?").await.0, 404);
    let (_, bobs) = chat.list(&bob, &[]).await;
    assert_eq!(bobs["conversations"], json!([]), "gone from his list");
    assert_eq!(chat.remove(&ada, &id, &bob_id).await, 404, "not a participant any more");

    // The tenant's owner manages it without being a participant (moderation), but reads nothing.
    let (status, added) = chat.add(&owner, &id, &[&dan_id]).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["participant_count"], 3);
    assert_eq!(chat.get(&owner, &id).await.0, 404);
    assert_eq!(chat.add(&ada, &id, &[&dan_id]).await.0, 409, "a participant already");
    let stranger = uuid::Uuid::new_v4().to_string();
    assert_eq!(chat.add(&ada, &id, &[&stranger]).await.0, 422, "not a user of the tenant");
    let globex_user = sub(&foreign);
    assert_eq!(chat.add(&ada, &id, &[&globex_user]).await.0, 422, "another tenant's user");
    assert_eq!(chat.add(&foreign, &id, &[&dan_id]).await.0, 404, "another tenant's admin");
    let (status, seen) = chat.messages(&dan, &id, &[]).await;
    assert_eq!(status, 200, "{seen}");

    // Leaving: a group yes, a direct conversation no.
    assert_eq!(chat.leave(&cy, &id).await, 204);
    assert_eq!(chat.get(&cy, &id).await.0, 404);
    let (status, direct) = chat.create(&ada, json!({"type": "direct", "participants": [dan_id]})).await;
    assert_eq!(status, 201, "{direct}");
    let direct = direct["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(chat.leave(&dan, &direct).await, 409);
    assert_eq!(chat.add(&ada, &direct, &[&cy_id]).await.0, 409, "a direct conversation keeps its two");
    assert_eq!(chat.get(&dan, &direct).await.0, 200);

    let types: Vec<String> =
        chat_events(stored_events(&stack, "acme").await).into_iter().map(|e| e.event_type).collect();
    for expected in [
        "conversation.participant_removed",
        "conversation.participants_added",
        "conversation.participant_left",
    ] {
        assert_eq!(types.iter().filter(|t| *t == expected).count(), 1, "{expected} in {types:?}");
    }
}

#[tokio::test]
async fn authors_edit_and_delete_their_messages_and_admins_moderate() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob = chat.api.token("acme", "bob@acme.example").await;
    let owner = chat.api.treasurer("acme").await;
    let (ada_id, bob_id) = (sub(&ada), sub(&bob));
    let id = chat.api.group(&ada, "edits", &[&bob_id]).await;
    for text in ["ada one", "bob one", "bob two", "bob three"] {
        let token = if text.starts_with("ada") { &ada } else { &bob };
        assert_eq!(chat.post(token, &id, text).await.0, 201);
    }

    assert_eq!(chat.edit(&bob, &id, 1, "not yours").await, 403);
    assert_eq!(chat.edit(&ada, &id, 1, "ada one, edited").await, 204);
    assert_eq!(chat.edit(&ada, &id, 99, "nothing there").await, 404);
    assert_eq!(chat.delete(&bob, &id, 1).await, 403, "a member deletes only their own");
    assert_eq!(chat.delete(&bob, &id, 2).await, 204, "the author");
    assert_eq!(chat.delete(&bob, &id, 2).await, 204, "again: nothing changes");
    assert_eq!(chat.edit(&bob, &id, 2, "back?").await, 409, "a tombstone stays one");
    assert_eq!(chat.delete(&ada, &id, 3).await, 204, "the conversation's admin");
    assert_eq!(chat.delete(&owner, &id, 4).await, 204, "the tenant's owner, not a participant");
    assert_eq!(chat.delete(&ada, &id, 99).await, 404);

    let (_, page) = chat.messages(&bob, &id, &[]).await;
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "tombstones keep their place");
    assert_eq!(messages[0]["body"], "ada one, edited");
    assert!(messages[0]["edited_at"].is_string());
    for (m, by) in messages[1..].iter().zip([&bob_id, &ada_id, &sub(&owner)]) {
        assert_eq!((m["deleted"].as_bool(), &m["body"]), (Some(true), &Value::Null), "{m}");
        assert_eq!(m["deleted_by"], by.as_str());
    }

    let events = chat_events(stored_events(&stack, "acme").await);
    let edited: Vec<&Value> =
        events.iter().filter(|e| e.event_type == "message.edited").map(|e| &e.payload).collect();
    assert_eq!(
        edited,
        [
            &json!({"conversation_id": id, "seq": 1, "author_id": ada_id, "actor": {"type": "user", "id": ada_id}})
        ]
    );
    let deleted: Vec<u64> = events
        .iter()
        .filter(|e| e.event_type == "message.deleted")
        .map(|e| e.payload["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(deleted, [2, 3, 4], "one event per tombstone");
    assert!(events.iter().all(|e| !e.payload.to_string().contains(" one")), "no text in events");
}

#[tokio::test]
async fn bad_input_and_machine_clients_are_refused() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob_id = sub(&chat.api.token("acme", "bob@acme.example").await);
    let ada_id = sub(&ada);
    for (body, field) in [
        (json!({"type": "direct", "participants": []}), Some("participants")),
        (
            json!({"type": "direct", "participants": [bob_id, uuid::Uuid::new_v4().to_string()]}),
            Some("participants"),
        ),
        (json!({"type": "direct", "participants": [ada_id]}), Some("participants[0]")),
        (json!({"type": "direct", "participants": [bob_id], "title": "x"}), Some("title")),
        (json!({"type": "group", "participants": [bob_id]}), Some("title")),
        (json!({"type": "group", "title": " ", "participants": []}), Some("title")),
        (
            json!({"type": "group", "title": "t", "participants": ["ada@acme.example"]}),
            Some("participants[0]"),
        ),
        (json!({"type": "channel", "participants": []}), Some("type")),
        (json!({"type": "group", "title": "t", "participants": [], "extra": 1}), None),
    ] {
        let (status, problem) = chat.create(&ada, body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}");
        }
        assert!(!problem.to_string().contains("ada@acme.example"), "never echoed: {problem}");
    }
    let admin_elsewhere = json!({"type": "group", "title": "t", "participants": [], "admins": [bob_id]});
    assert_eq!(chat.create(&ada, admin_elsewhere).await.0, 422, "an admin who is no participant");
    let id = chat.api.group(&ada, "input", &[&bob_id]).await;
    for (client_id, text, field) in [
        ("with space", "hi", "client_message_id"),
        ("ok", "", "body"),
        ("ok", "\u{7}bell", "body"),
        ("ok", &"x".repeat(4001), "body"),
    ] {
        let response = chat.post_raw(&ada, &id, client_id, text).await;
        let (status, problem) = parts(&response);
        assert_eq!((status, problem["field"].as_str()), (400, Some(field)), "{problem}");
    }
    for query in [vec![("before", "x")], vec![("after", "-1")], vec![("limit", "101")]] {
        assert_eq!(chat.messages(&ada, &id, &query).await.0, 400, "{query:?}");
    }
    assert_eq!(chat.list(&ada, &[("cursor", &uuid::Uuid::new_v4().to_string())]).await.0, 400);

    // Chat is between people.
    let client = client_token(&stack, "acme", Role::Admin).await;
    assert_eq!(chat.create(&client, json!({"type": "group", "title": "t", "participants": []})).await.0, 403);
    assert_eq!(chat.list(&client, &[]).await.0, 403);
    assert_eq!(chat.post(&client, &id, "beep").await.0, 403);
}

#[tokio::test]
async fn posts_count_against_the_per_principal_write_limit() {
    let stack = TestStack::new().await;
    let chat = Chat { api: Api::new(&stack) };
    let ada = chat.api.token("acme", "ada@acme.example").await;
    let bob = chat.api.token("acme", "bob@acme.example").await;
    let id = chat.api.group(&ada, "limited", &[&sub(&bob)]).await;
    stack.start_of_next_window(60);
    let limited = stack.app_with("PostMessageFunction", &[("RATE_LIMIT_WRITES", "2/60")]);
    let post = |token: &str, client_id: &str| {
        let bearer = format!("Bearer {token}");
        let body = json!({"client_message_id": client_id, "body": "hi"}).to_string();
        let headers = [("authorization", bearer), ("content-type", "application/json".to_owned())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api_event("POST", "/v1/conversations/{id}/messages", &[("id", &id)], &[], &headers, Some(&body))
    };
    for n in 0..2 {
        let response =
            caas_tests::api::dispatch(&limited, "PostMessageFunction", post(&ada, &format!("a{n}"))).await;
        assert_eq!(response.status(), 201);
    }
    let refused = caas_tests::api::dispatch(&limited, "PostMessageFunction", post(&ada, "a2")).await;
    assert_problem(&refused, 429);
    assert!(
        header(&refused, "retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s)))
    );
    let replay = caas_tests::api::dispatch(&limited, "PostMessageFunction", post(&ada, "a1")).await;
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"), "a retry is not a new post");
    let other = caas_tests::api::dispatch(&limited, "PostMessageFunction", post(&bob, "b0")).await;
    assert_eq!(other.status(), 201, "per principal");
    stack.clock.advance(time::Duration::seconds(60));
    let later = caas_tests::api::dispatch(&limited, "PostMessageFunction", post(&ada, "a2")).await;
    assert_eq!((later.status().as_u16(), parts(&later).1["seq"].as_u64()), (201, Some(4)), "the next window");
}
