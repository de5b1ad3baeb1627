// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Search against the emulator, indexed by the real pipeline: outbox-drain
//! on the table's stream routes events to the search queue, and index-search
//! gets the SQS event Lambda would send. Messages are found only in the
//! caller's conversations (authorization from their participant items at
//! query time, not from the index); edits and deletes are followed; people
//! by display-name prefix, shown from the sealed copy; conversations by
//! title and participants' names; erasure removes a person; pages; the
//! per-principal search limit; the cost of a query counted.

use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::triggers::{QueueTrigger, StreamTrigger, lambda_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

struct Search<'a> {
    api: Api<'a>,
    stream: StreamTrigger,
    queue: QueueTrigger,
    tenant: String,
}

impl<'a> Search<'a> {
    async fn new(stack: &'a TestStack) -> Self {
        let tenant = format!("search-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        open_tenant(stack, &tenant).await;
        Self {
            api: Api::new(stack),
            stream: StreamTrigger::new(stack, "OutboxDrainFunction"),
            queue: QueueTrigger::new(stack, "SearchQueue"),
            tenant,
        }
    }

    /// Registers a person (with a display name when given) and logs them in:
    /// (user id, access token).
    async fn person(&self, local: &str, name: Option<&str>) -> (String, String) {
        let email = format!("{local}@{}.example.com", self.tenant);
        let mut body = json!({ "tenant_id": self.tenant, "email": email, "password": PASSWORD });
        if let Some(name) = name {
            body["display_name"] = json!(name);
        }
        let response = self
            .api
            .call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body.to_string())))
            .await;
        let (status, registered) = parts(&response);
        assert_eq!(status, 201, "{registered}");
        assert_eq!(registered["display_name"].as_str(), name);
        let token = self.api.login(&self.tenant, &email).await;
        (registered["user_id"].as_str().unwrap().to_owned(), token)
    }

    async fn call(
        &self,
        function: &str,
        route: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
    ) -> Response<Body> {
        self.api.route(function, route, params, query, token, body.as_ref()).await
    }

    async fn direct(&self, token: &str, other: &str) -> String {
        let body = json!({ "type": "direct", "participants": [other] });
        let response = self
            .call("CreateConversationFunction", "POST /v1/conversations", &[], &[], token, Some(body))
            .await;
        let (status, conversation) = parts(&response);
        assert_eq!(status, 201, "{conversation}");
        conversation["conversation_id"].as_str().unwrap().to_owned()
    }

    /// Posts; the message's sequence number.
    async fn post(&self, token: &str, conversation: &str, text: &str) -> u64 {
        let body = json!({ "client_message_id": uuid::Uuid::new_v4().to_string(), "body": text });
        let response = self
            .call(
                "PostMessageFunction",
                "POST /v1/conversations/{id}/messages",
                &[("id", conversation)],
                &[],
                token,
                Some(body),
            )
            .await;
        let (status, message) = parts(&response);
        assert_eq!(status, 201, "{message}");
        message["seq"].as_u64().unwrap()
    }

    /// What Lambda does: the stream through outbox-drain, then the search
    /// queue through index-search until it is empty. Returns the DynamoDB
    /// calls index-search made.
    async fn index(&self) -> Vec<String> {
        let stack = self.api.stack;
        let drain = stack.app("OutboxDrainFunction");
        let records = self.stream.poll().await;
        let drained = outbox_drain::handler(&drain, StreamTrigger::event(records)).await.unwrap();
        assert!(drained.batch_item_failures.is_empty());
        let indexer = self.api.app("IndexSearchFunction");
        let mut calls = Vec::new();
        loop {
            let batch = self.queue.receive(10).await;
            if batch.records.is_empty() {
                return calls;
            }
            stack.round_trips.reset();
            let response = index_search::handler(&indexer, lambda_event(batch.clone())).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
            calls.extend(stack.round_trips.operations("DynamoDB"));
            self.queue.settle(&batch, &response).await;
        }
    }

    async fn search(&self, what: &str, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let function = match what {
            "messages" => "SearchMessagesFunction",
            "conversations" => "SearchConversationsFunction",
            "users" => "SearchUsersFunction",
            other => panic!("no search {other}"),
        };
        parts(&self.call(function, &format!("GET /v1/search/{what}"), &[], query, token, None).await)
    }

    /// The texts of the messages a search finds (newest first).
    async fn texts(&self, token: &str, q: &str) -> Vec<String> {
        let (status, page) = self.search("messages", token, &[("q", q)]).await;
        assert_eq!(status, 200, "{page}");
        page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect()
    }

    async fn names(&self, token: &str, q: &str) -> Vec<String> {
        let (status, page) = self.search("users", token, &[("q", q)]).await;
        assert_eq!(status, 200, "{page}");
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["display_name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn conversation_ids(&self, token: &str, q: &str) -> Vec<String> {
        let (status, page) = self.search("conversations", token, &[("q", q)]).await;
        assert_eq!(status, 200, "{page}");
        let mut ids: Vec<String> = page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversation_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn messages_are_found_in_the_callers_conversations_only_and_follow_edits_and_deletes() {
    let stack = TestStack::new().await;
    let s = Search::new(&stack).await;
    let (_ada, ada) = s.person("ada", Some("Ada Lovelace")).await;
    let (bob_id, bob) = s.person("bob", Some("Bob Marley")).await;
    let (eve_id, eve) = s.person("eve", None).await;
    let apollo = s.api.group(&ada, "Project Apollo", &[&bob_id]).await;
    let direct = s.direct(&bob, &eve_id).await;
    let lunch = s.post(&ada, &apollo, "Lunch at NOON tomorrow?").await;
    s.post(&bob, &direct, "Lunch with you, Eve? Café at one").await;
    s.post(&bob, &apollo, "Sounds good").await;
    assert!(s.texts(&ada, "lunch").await.is_empty(), "nothing is indexed before the indexer runs");
    s.index().await;

    assert_eq!(s.texts(&ada, "lunch").await, ["Lunch at NOON tomorrow?"], "not bob's message to eve");
    assert_eq!(s.texts(&eve, "LUNCH").await, ["Lunch with you, Eve? Café at one"]);
    assert_eq!(
        s.texts(&bob, "lunch").await,
        ["Lunch with you, Eve? Café at one", "Lunch at NOON tomorrow?"],
        "newest first"
    );
    assert_eq!(s.texts(&bob, "noon+lunch").await, ["Lunch at NOON tomorrow?"], "every word");
    assert!(s.texts(&bob, "lunch dinner").await.is_empty());
    assert_eq!(s.texts(&eve, "café").await.len(), 1);
    assert!(s.texts(&eve, "cafe").await.is_empty(), "accents are kept");
    assert!(s.texts(&ada, "lun").await.is_empty(), "messages match whole words");

    // The cost of a query: the limit, the caller's inbox, the index, one batch read.
    stack.round_trips.reset();
    assert_eq!(s.texts(&ada, "lunch").await.len(), 1);
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["UpdateItem", "Query", "Query", "BatchGetItem"]);
    assert_eq!(stack.round_trips.count("KMS"), 0, "the lookup key is the container's");

    // An edit: the stale posting is dropped at once (the text is checked), the new one indexed.
    let seq = lunch.to_string();
    let edited = s
        .call(
            "EditMessageFunction",
            "PATCH /v1/conversations/{id}/messages/{seq}",
            &[("id", &apollo), ("seq", &seq)],
            &[],
            &ada,
            Some(json!({ "body": "Dinner at eight" })),
        )
        .await;
    assert_eq!(edited.status(), 204);
    assert!(s.texts(&ada, "lunch").await.is_empty());
    // The cost of indexing a message: reading it and its document, then one
    // batch of its postings (dinner, at, eight) and the gone ones (lunch,
    // noon, tomorrow), then the document.
    assert_eq!(s.index().await, ["GetItem", "GetItem", "BatchWriteItem", "BatchWriteItem"]);
    assert_eq!(s.texts(&ada, "dinner").await, ["Dinner at eight"]);
    assert!(s.texts(&ada, "lunch").await.is_empty());

    // Removed from the group: its messages are not found for them, index or not.
    let removed = s
        .call(
            "RemoveParticipantFunction",
            "DELETE /v1/conversations/{id}/participants/{user_id}",
            &[("id", &apollo), ("user_id", &bob_id)],
            &[],
            &ada,
            None,
        )
        .await;
    assert_eq!(removed.status(), 204);
    assert!(s.texts(&bob, "dinner").await.is_empty());
    assert_eq!(s.texts(&ada, "dinner").await.len(), 1);

    // A delete takes the message out.
    let deleted = s
        .call(
            "DeleteMessageFunction",
            "DELETE /v1/conversations/{id}/messages/{seq}",
            &[("id", &direct), ("seq", "1")],
            &[],
            &bob,
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    s.index().await;
    assert!(s.texts(&eve, "lunch").await.is_empty());
    let postings = scan_raw_items(&stack, "kind = :kind", &[(":kind", "search_token")]).await;
    assert!(
        !postings.iter().any(|p| p.get("conversation_id").and_then(|c| c.as_s().ok()) == Some(&direct)),
        "the deleted message's postings are gone"
    );
}

#[tokio::test]
async fn message_results_page_newest_first() {
    let stack = TestStack::new().await;
    let s = Search::new(&stack).await;
    let (_ada, ada) = s.person("ada", None).await;
    let (bob_id, _bob) = s.person("bob", None).await;
    let room = s.api.group(&ada, "Reports", &[&bob_id]).await;
    for n in 1..=5 {
        s.post(&ada, &room, &format!("weekly report {n}")).await;
    }
    s.post(&ada, &room, "something else").await;
    // Six messages, each read with its (absent) document and written in two
    // batches; two registrations without a name, each read (entry and key, then
    // the absent document) and not written.
    assert_eq!(s.index().await.len(), 6 * 4 + 2 * 2);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut query = vec![("q", "report"), ("limit", "2")];
        if let Some(cursor) = cursor.as_deref() {
            query.push(("cursor", cursor));
        }
        let (status, page) = s.search("messages", &ada, &query).await;
        assert_eq!(status, 200, "{page}");
        let bodies = page["messages"].as_array().unwrap();
        assert!(bodies.len() <= 2);
        seen.extend(bodies.iter().map(|m| m["body"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (1..=5).rev().map(|n| format!("weekly report {n}")).collect();
    assert_eq!(seen, expected);
    let (status, _) = s.search("messages", &ada, &[("q", "report"), ("cursor", "not-a-cursor")]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn people_and_conversations_by_name_and_title_and_erasure_removes_a_person() {
    let stack = TestStack::new().await;
    let s = Search::new(&stack).await;
    let (ada_id, ada) = s.person("ada", Some("Ada Lovelace")).await;
    let (bob_id, bob) = s.person("bob", Some("Bob Marley")).await;
    let (carol_id, carol) = s.person("carol", None).await;
    let (_eve, eve) = s.person("eve", Some("Eve Online")).await;
    let apollo = s.api.group(&ada, "Project Apollo", &[&bob_id, &carol_id]).await;
    let direct = s.direct(&ada, &bob_id).await;
    s.index().await;

    // People: word prefixes of display names, normalized; shown from the sealed copy.
    assert_eq!(s.names(&carol, "lov").await, ["Ada Lovelace"]);
    assert_eq!(s.names(&carol, "ADA").await, ["Ada Lovelace"]);
    assert_eq!(s.names(&carol, "bob+mar").await, ["Bob Marley"]);
    assert!(s.names(&carol, "ovelace").await.is_empty(), "prefixes, not substrings");
    assert!(s.names(&carol, "carol").await.is_empty(), "no name, not in the directory search");
    stack.round_trips.reset();
    assert_eq!(s.names(&carol, "lovelace").await.len(), 1);
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["UpdateItem", "Query", "BatchGetItem"]);
    assert_eq!(stack.round_trips.operations("KMS"), ["Decrypt"], "one per person shown");

    // Nothing of a name in plaintext: not in the index, the directory or the events.
    for kind in ["search_token", "search_doc", "member", "outbox"] {
        let items = scan_raw_items(&stack, "kind = :kind", &[(":kind", kind)]).await;
        let dump = format!("{items:?}").to_lowercase();
        assert!(!dump.contains("lovelace") && !dump.contains("marley"), "{kind} holds a name");
    }

    // Conversations: by title, by another participant's name, only the caller's.
    assert_eq!(s.conversation_ids(&carol, "apollo").await, std::slice::from_ref(&apollo));
    // Its cost: the limit, the inbox, the people index (no one named Apollo), the
    // caller's conversations (one batch), the page's participant items.
    stack.round_trips.reset();
    assert_eq!(s.conversation_ids(&carol, "apollo").await.len(), 1);
    assert_eq!(
        stack.round_trips.operations("DynamoDB"),
        ["UpdateItem", "Query", "Query", "BatchGetItem", "BatchGetItem"]
    );
    assert_eq!(s.conversation_ids(&carol, "marley").await, std::slice::from_ref(&apollo));
    let mut both = vec![apollo.clone(), direct.clone()];
    both.sort();
    assert_eq!(s.conversation_ids(&ada, "bob").await, both);
    assert!(s.conversation_ids(&eve, "apollo").await.is_empty(), "not a participant");
    assert!(s.conversation_ids(&eve, "bob").await.is_empty());

    // Erasure: the person leaves the directory search and the conversations' name matches.
    let bearer = format!("Bearer {bob}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let body = json!({ "password": PASSWORD }).to_string();
    let erased = s
        .api
        .call(
            "EraseUserFunction",
            api_event("DELETE", "/v1/users/{id}", &[("id", &bob_id)], &[], &headers, Some(&body)),
        )
        .await;
    assert_eq!(erased.status(), 204, "{:?}", parts(&erased).1);
    assert!(s.names(&carol, "marley").await.is_empty(), "shown only from a live entry, at once");
    s.index().await;
    assert!(s.names(&carol, "marley").await.is_empty());
    assert_eq!(s.conversation_ids(&carol, "marley").await, Vec::<String>::new());
    let postings = scan_raw_items(&stack, "kind = :kind", &[(":kind", "search_token")]).await;
    assert!(
        !postings.iter().any(|p| p.get("user_id").and_then(|u| u.as_s().ok()) == Some(&bob_id)),
        "the erased person's postings are gone"
    );
    assert_eq!(s.names(&carol, "ada").await, ["Ada Lovelace"]);

    // A new display name: the person's own change (someone else's needs an
    // owner or admin), reindexed from `user.profile_changed`.
    let params = [("id", ada_id.as_str())];
    let route = "PATCH /v1/users/{id}";
    let rename = |name: &str| Some(json!({ "display_name": name }));
    assert_eq!(
        s.call("UpdateUserFunction", route, &params, &[], &carol, rename("Not Ada")).await.status(),
        403
    );
    let (status, view) =
        parts(&s.call("UpdateUserFunction", route, &params, &[], &ada, rename("  Grace Hopper ")).await);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["display_name"], "Grace Hopper");
    let combined = s
        .call(
            "UpdateUserFunction",
            "PATCH /v1/users/{id}",
            &[("id", &ada_id)],
            &[],
            &ada,
            Some(json!({ "display_name": "X", "role": "admin" })),
        )
        .await;
    assert_eq!(combined.status(), 403, "a role change is an administrator's");
    assert!(s.names(&carol, "grace").await.is_empty(), "not indexed yet");
    assert!(s.names(&carol, "lovelace").await.is_empty(), "the stale posting is checked against the name");
    s.index().await;
    assert_eq!(s.names(&carol, "grace+hop").await, ["Grace Hopper"]);
    assert!(s.names(&carol, "ada").await.is_empty());
    let events = stored_events(&stack, &s.tenant).await;
    let changed = events.iter().find(|e| e.event_type == "user.profile_changed").expect("the event");
    assert_eq!(changed.payload["user_id"], ada_id.as_str());
    assert!(!changed.payload.to_string().to_lowercase().contains("grace"), "no name in the event");
}

#[tokio::test]
async fn people_results_page() {
    let stack = TestStack::new().await;
    let s = Search::new(&stack).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(s.person(&format!("zed{n}"), Some(&format!("Zed Number{n}"))).await.0);
    }
    let (_me, me) = s.person("me", None).await;
    s.index().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("q", "zed"), ("limit", "2")];
        if let Some(cursor) = cursor.as_deref() {
            query.push(("cursor", cursor));
        }
        let (status, page) = s.search("users", &me, &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["users"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    ids.sort();
    assert_eq!(seen, ids, "every one once, in user-id order");
}

#[tokio::test]
async fn searches_are_limited_per_principal_and_refuse_bad_queries() {
    let stack = TestStack::new().await;
    let s = Search::new(&stack).await;
    let (_ada, ada) = s.person("ada", Some("Ada Lovelace")).await;
    let (_bob, bob) = s.person("bob", None).await;
    stack.start_of_next_window(60);
    let app = stack.app_with("SearchUsersFunction", &[("RATE_LIMIT_SEARCH", "2/60")]);
    let get = |token: &str, q: &str| {
        let bearer = format!("Bearer {token}");
        api_event("GET", "/v1/search/users", &[], &[("q", q)], &[("authorization", &bearer)], None)
    };
    for _ in 0..2 {
        let response = api::dispatch(&app, "SearchUsersFunction", get(&ada, "ada")).await;
        assert_eq!(response.status(), 200);
    }
    let limited = api::dispatch(&app, "SearchUsersFunction", get(&ada, "ada")).await;
    assert_problem(&limited, 429);
    let retry: u64 = header(&limited, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let other = api::dispatch(&app, "SearchUsersFunction", get(&bob, "ada")).await;
    assert_eq!(other.status(), 200, "per principal");

    for (what, query) in [
        ("messages", vec![]),
        ("users", vec![("q", " ,.; ")]),
        ("conversations", vec![("q", "a b c d e f")]),
        ("messages", vec![("q", "ok"), ("limit", "51")]),
    ] {
        let (status, problem) = s.search(what, &bob, &query).await;
        assert_eq!(status, 400, "{what} {query:?}: {problem}");
    }
    let client = client_token(&stack, &s.tenant, caas::auth::Role::Admin).await;
    let (status, _) = s.search("messages", &client, &[("q", "ada")]).await;
    assert_eq!(status, 403, "search is for people");
    let (status, _) = s.search("users", "not-a-token", &[("q", "ada")]).await;
    assert_eq!(status, 401);

    // A display name is checked at registration.
    let body = json!({ "tenant_id": s.tenant, "email": format!("x@{}.example.com", s.tenant), "password": PASSWORD, "display_name": " " });
    let response = s
        .api
        .call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body.to_string())))
        .await;
    assert_problem(&response, 400);
}

/// The index-search sample (a `message.posted` of a message that is not
/// there) runs through the handler: nothing to index, nothing failed.
#[tokio::test]
async fn the_index_search_sample_runs_through_its_handler() {
    let stack = TestStack::new().await;
    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&event_file("index-search.json")).expect("index-search.json");
    let response = index_search::handler(&stack.app("IndexSearchFunction"), lambda_event(sqs)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let malformed: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json!({
        "Records": [{ "messageId": "m-1", "body": "not an envelope", "attributes": { "MessageGroupId": "acme" } }]
    }))
    .unwrap();
    let response =
        index_search::handler(&stack.app("IndexSearchFunction"), lambda_event(malformed)).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "left for the queue's redrive");
}
