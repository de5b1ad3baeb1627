// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Media against the emulator's S3 with real presigned URLs: an upload with
//! a plain HTTP client, its completion (HeadObject against the declaration),
//! the download, attachment to a message, refusals (non-participants, a
//! wrong size or type, someone else's delete), the upload rate limit, and
//! the round trips of each route.

use caas_tests::api::{Api, user_id as sub};
use caas_tests::*;
use serde_json::{Value, json};

struct Media<'a> {
    api: Api<'a>,
}

const MEDIA: &str = "/v1/conversations/{id}/media";
const ONE: &str = "/v1/conversations/{id}/media/{media_id}";

impl Media<'_> {
    async fn call(
        &self,
        function: &str,
        route: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        parts(&self.api.route(function, route, params, &[], token, body).await)
    }

    async fn request(&self, token: &str, id: &str, content_type: &str, size: u64) -> (u16, Value) {
        let body = json!({"content_type": content_type, "size": size});
        self.call("RequestUploadFunction", &format!("POST {MEDIA}"), &[("id", id)], token, Some(&body)).await
    }

    async fn complete(&self, token: &str, id: &str, media: &str) -> (u16, Value) {
        let route = format!("POST {ONE}/complete");
        self.call("CompleteUploadFunction", &route, &[("id", id), ("media_id", media)], token, None).await
    }

    async fn get(&self, token: &str, id: &str, media: &str) -> (u16, Value) {
        self.call("GetMediaFunction", &format!("GET {ONE}"), &[("id", id), ("media_id", media)], token, None)
            .await
    }

    async fn delete(&self, token: &str, id: &str, media: &str) -> (u16, Value) {
        let route = format!("DELETE {ONE}");
        self.call("DeleteMediaFunction", &route, &[("id", id), ("media_id", media)], token, None).await
    }

    async fn post(&self, token: &str, id: &str, attachments: &[&str]) -> (u16, Value) {
        let body = json!({
            "client_message_id": uuid::Uuid::new_v4().to_string(),
            "body": "see attached",
            "attachments": attachments,
        });
        let route = "POST /v1/conversations/{id}/messages";
        self.call("PostMessageFunction", route, &[("id", id)], token, Some(&body)).await
    }

    /// Requests an upload and PUTs `bytes` to its URL (as declared unless the
    /// test lies); answers the media id.
    async fn upload(&self, token: &str, id: &str, content_type: &str, declared: u64, bytes: &[u8]) -> String {
        let (status, ticket) = self.request(token, id, content_type, declared).await;
        assert_eq!(status, 201, "{ticket}");
        let mut headers = presigned_headers(&ticket["upload"]);
        for (name, value) in &mut headers {
            if name == "content-length" {
                *value = bytes.len().to_string();
            }
        }
        let url = ticket["upload"]["url"].as_str().unwrap();
        let (status, _, body) = plain_http("PUT", url, &headers, bytes.to_vec()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        ticket["media_id"].as_str().unwrap().to_owned()
    }
}

/// The object's key in the bucket, if it is there (HeadObject by the test itself).
async fn object_exists(stack: &TestStack, key: &str) -> bool {
    let bucket = &stack.stack.resources["MediaBucket"].name;
    let s3 = stack.clients.s3.as_ref().expect("the tests' S3 client");
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(error) => panic!("HeadObject: {error:?}"),
    }
}

/// The object's tags.
async fn tags(stack: &TestStack, key: &str) -> Vec<(String, String)> {
    let bucket = &stack.stack.resources["MediaBucket"].name;
    let s3 = stack.clients.s3.as_ref().expect("the tests' S3 client");
    let tagging = s3.get_object_tagging().bucket(bucket).key(key).send().await.expect("GetObjectTagging");
    tagging.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

#[tokio::test]
async fn an_upload_is_completed_downloaded_and_attached_with_real_presigned_urls() {
    let stack = TestStack::new().await;
    let media = Media { api: Api::new(&stack) };
    let ada = media.api.token("acme", "ada@acme.example").await;
    let bob = media.api.token("acme", "bob@acme.example").await;
    let id = media.api.group(&ada, "media", &[&sub(&bob)]).await;
    let bytes = b"\x89PNG\r\n\x1a\n not really a picture".to_vec();

    stack.round_trips.reset();
    let (status, ticket) = media.request(&ada, &id, "image/png", bytes.len() as u64).await;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(stack.round_trips.count("S3"), 0, "the presigning is local: {:?}", stack.round_trips.calls());
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["TransactWriteItems"]);
    assert_eq!(ticket["status"], "pending");
    assert_eq!(ticket["upload"]["method"], "PUT");
    let url = ticket["upload"]["url"].as_str().unwrap();
    let media_id = ticket["media_id"].as_str().unwrap().to_owned();
    let key = format!("t/acme/c/{id}/{media_id}");
    assert!(url.contains(&key), "the key is scoped by tenant and conversation: {url}");
    let signed = url.split("X-Amz-SignedHeaders=").nth(1).unwrap().split('&').next().unwrap();
    let signed = percent_encoding::percent_decode_str(signed).decode_utf8_lossy().into_owned();
    for header in ["content-length", "content-type", "x-amz-tagging"] {
        assert!(signed.split(';').any(|h| h == header), "{header} is signed: {signed}");
    }
    let headers = presigned_headers(&ticket["upload"]);
    assert!(headers.contains(&("content-type".into(), "image/png".into())), "{headers:?}");
    assert!(headers.contains(&("content-length".into(), bytes.len().to_string())), "{headers:?}");
    assert!(
        headers.iter().all(|(name, _)| signed.split(';').any(|h| h == name)),
        "signed ones only: {headers:?}"
    );

    // Not attachable before completion.
    assert_eq!(media.post(&ada, &id, &[&media_id]).await.0, 422);
    let (status, pending) = media.get(&bob, &id, &media_id).await;
    assert_eq!((status, pending["status"].as_str()), (200, Some("pending")));
    assert!(pending.get("download").is_none(), "{pending}");
    assert_eq!(media.complete(&ada, &id, &media_id).await.0, 422, "nothing uploaded yet");

    let (status, _, body) = plain_http("PUT", url, &headers, bytes.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        tags(&stack, &key).await,
        [("pending".to_owned(), "true".to_owned())],
        "the lifecycle rule's filter"
    );

    assert_eq!(media.complete(&bob, &id, &media_id).await.0, 403, "only its uploader completes it");
    stack.round_trips.reset();
    let (status, ready) = media.complete(&ada, &id, &media_id).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(stack.round_trips.operations("S3"), ["HeadObject", "DeleteObjectTagging"]);
    assert_eq!(media.complete(&ada, &id, &media_id).await.0, 200, "completing again answers the same");
    assert!(tags(&stack, &key).await.is_empty(), "off the lifecycle rule: kept");

    stack.round_trips.reset();
    let (status, got) = media.get(&bob, &id, &media_id).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(stack.round_trips.count("S3"), 0, "the presigning is local");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem"]);
    assert_eq!(
        (got["size"].as_u64(), got["content_type"].as_str()),
        (Some(bytes.len() as u64), Some("image/png"))
    );
    let download = got["download"]["url"].as_str().expect("a download URL");
    let (status, response_headers, downloaded) =
        plain_http("GET", download, &presigned_headers(&got["download"]), Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(downloaded, bytes, "the bytes uploaded");
    assert_eq!(response_headers.get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));

    // Attached to a message: still one read and one transaction.
    stack.round_trips.reset();
    let (status, message) = media.post(&ada, &id, &[&media_id]).await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(message["attachments"], json!([media_id]));
    assert_eq!(media.post(&bob, &id, &[&media_id]).await.0, 422, "someone else's upload");
    let (_, page) = media
        .call("ListMessagesFunction", "GET /v1/conversations/{id}/messages", &[("id", &id)], &bob, None)
        .await;
    assert_eq!(page["messages"][0]["attachments"], json!([media_id]));

    let events = stored_events(&stack, "acme").await;
    let types: Vec<&str> =
        events.iter().map(|e| e.event_type.as_str()).filter(|t| t.starts_with("media.")).collect();
    assert_eq!(types, ["media.requested", "media.uploaded"]);
    let posted = events.iter().rfind(|e| e.event_type == "message.posted").unwrap();
    assert_eq!(posted.payload["attachments"], json!([media_id]));
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("not really a picture") && !text.contains("see attached"), "no content in events");
}

#[tokio::test]
async fn non_participants_see_no_media_and_bad_declarations_are_named() {
    let stack = TestStack::new().await;
    let media = Media { api: Api::new(&stack) };
    let ada = media.api.token("acme", "ada@acme.example").await;
    let bob = media.api.token("acme", "bob@acme.example").await;
    let eve = media.api.token("acme", "eve@acme.example").await;
    let mallory = media.api.token("globex", "mallory@globex.example").await;
    let id = media.api.group(&ada, "media", &[&sub(&bob)]).await;
    let media_id = media.upload(&ada, &id, "text/plain", 5, b"hello").await;
    assert_eq!(media.complete(&ada, &id, &media_id).await.0, 200);

    for outsider in [&eve, &mallory] {
        assert_eq!(media.request(outsider, &id, "text/plain", 5).await.0, 404);
        assert_eq!(media.get(outsider, &id, &media_id).await.0, 404);
        assert_eq!(media.complete(outsider, &id, &media_id).await.0, 404);
        assert_eq!(media.delete(outsider, &id, &media_id).await.0, 404);
    }
    assert_eq!(media.get(&bob, &id, &uuid::Uuid::new_v4().to_string()).await.0, 404);
    assert_eq!(media.get(&bob, &id, "not-an-id").await.0, 404);

    for (body, field) in [
        (json!({"content_type": "text/html", "size": 5}), "content_type"),
        (json!({"content_type": "image/png", "size": 0}), "size"),
        (json!({"content_type": "image/png", "size": 26_214_401}), "size"),
        (json!({"content_type": "image/png", "size": 1.5}), "size"),
        (json!({"content_type": "image/png"}), "size"),
    ] {
        let (status, problem) = media
            .call("RequestUploadFunction", &format!("POST {MEDIA}"), &[("id", &id)], &ada, Some(&body))
            .await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
}

#[tokio::test]
async fn an_upload_not_as_declared_is_refused_at_completion_and_deleted() {
    let stack = TestStack::new().await;
    let media = Media { api: Api::new(&stack) };
    let ada = media.api.token("acme", "ada@acme.example").await;
    let bob = media.api.token("acme", "bob@acme.example").await;
    let id = media.api.group(&ada, "media", &[&sub(&bob)]).await;

    // Declared 10 bytes, sent 4 (the emulator does not check the signature: completion does).
    let short = media.upload(&ada, &id, "application/pdf", 10, b"%PDF").await;
    let key = format!("t/acme/c/{id}/{short}");
    assert!(object_exists(&stack, &key).await);
    let (status, problem) = media.complete(&ada, &id, &short).await;
    assert_eq!(status, 422, "{problem}");
    assert!(!object_exists(&stack, &key).await, "the object is deleted");
    assert_eq!(media.get(&bob, &id, &short).await.1["status"], "pending", "never ready");
    assert_eq!(media.post(&ada, &id, &[&short]).await.0, 422, "not attachable");

    // Declared a PNG, sent as text.
    let (status, ticket) = media.request(&ada, &id, "image/png", 3).await;
    assert_eq!(status, 201);
    let mut headers = presigned_headers(&ticket["upload"]);
    for (name, value) in &mut headers {
        if name == "content-type" {
            *value = "text/plain".into();
        }
    }
    let url = ticket["upload"]["url"].as_str().unwrap();
    assert_eq!(plain_http("PUT", url, &headers, b"abc".to_vec()).await.0, 200);
    let wrong_type = ticket["media_id"].as_str().unwrap();
    assert_eq!(media.complete(&ada, &id, wrong_type).await.0, 422);
    assert!(!object_exists(&stack, &format!("t/acme/c/{id}/{wrong_type}")).await);
}

#[tokio::test]
async fn media_is_deleted_by_its_uploader_or_admins_only() {
    let stack = TestStack::new().await;
    let media = Media { api: Api::new(&stack) };
    let ada = media.api.token("acme", "ada@acme.example").await; // the group's admin
    let bob = media.api.token("acme", "bob@acme.example").await;
    let cy = media.api.token("acme", "cy@acme.example").await;
    let id = media.api.group(&ada, "media", &[&sub(&bob), &sub(&cy)]).await;
    let first = media.upload(&bob, &id, "audio/ogg", 3, b"ogg").await;
    assert_eq!(media.complete(&bob, &id, &first).await.0, 200);
    let second = media.upload(&bob, &id, "audio/ogg", 3, b"ogg").await;
    assert_eq!(media.complete(&bob, &id, &second).await.0, 200);

    assert_eq!(media.delete(&cy, &id, &first).await.0, 403, "another participant");
    assert!(object_exists(&stack, &format!("t/acme/c/{id}/{first}")).await);

    stack.round_trips.reset();
    assert_eq!(media.delete(&bob, &id, &first).await.0, 204, "its uploader");
    assert_eq!(stack.round_trips.operations("DynamoDB"), ["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(stack.round_trips.operations("S3"), ["DeleteObject"]);
    assert!(!object_exists(&stack, &format!("t/acme/c/{id}/{first}")).await);
    assert_eq!(media.get(&cy, &id, &first).await.0, 404);
    assert_eq!(media.post(&bob, &id, &[&first]).await.0, 422, "deleted media is not attachable");
    assert_eq!(media.delete(&bob, &id, &first).await.0, 204, "a retry changes nothing");

    assert_eq!(media.delete(&ada, &id, &second).await.0, 204, "a conversation admin (moderation)");
    assert!(!object_exists(&stack, &format!("t/acme/c/{id}/{second}")).await);

    let events = stored_events(&stack, "acme").await;
    let deleted: Vec<&caas::outbox::OutboxEvent> =
        events.iter().filter(|e| e.event_type == "media.deleted").collect();
    assert_eq!(deleted.len(), 2, "one event per deletion, none for the retry");
    assert_eq!(deleted[0].payload["media_id"], first.as_str());
    assert_eq!(deleted[1].payload["uploader_id"], sub(&bob).as_str());
}

#[tokio::test]
async fn uploads_are_limited_per_principal() {
    let stack = TestStack::new().await;
    let media = Media { api: Api::new(&stack) };
    let ada = media.api.token("acme", "ada@acme.example").await;
    let bob = media.api.token("acme", "bob@acme.example").await;
    let id = media.api.group(&ada, "media", &[&sub(&bob)]).await;
    media.api.configure("RequestUploadFunction", &[("RATE_LIMIT_UPLOADS", "2/60")]);
    stack.start_of_next_window(60);
    let route = format!("POST {MEDIA}");
    let body = json!({"content_type": "image/gif", "size": 10});
    for _ in 0..2 {
        let response =
            media.api.route("RequestUploadFunction", &route, &[("id", &id)], &[], &ada, Some(&body)).await;
        assert_eq!(response.status(), 201);
    }
    let refused =
        media.api.route("RequestUploadFunction", &route, &[("id", &id)], &[], &ada, Some(&body)).await;
    assert_problem(&refused, 429);
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let others =
        media.api.route("RequestUploadFunction", &route, &[("id", &id)], &[], &bob, Some(&body)).await;
    assert_eq!(others.status(), 201, "per principal");
    stack.start_of_next_window(60);
    let later =
        media.api.route("RequestUploadFunction", &route, &[("id", &id)], &[], &ada, Some(&body)).await;
    assert_eq!(later.status(), 201, "the next window");
    let pending = scan_items::<Value>(&stack, "kind = :media", &[(":media", "media")]).await;
    assert_eq!(pending.len(), 4, "the refused request left no item");
}
