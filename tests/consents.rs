// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Consents against the emulator: a person's append-only history, newest
//! first and paged; every decision an outbox event without personal data,
//! in the same transaction; bad input named; machine clients, disabled users
//! and other people's histories refused.

use caas::auth::Role;
use caas_tests::api::{Api, api_event, claims};
use caas_tests::*;
use serde_json::{Value, json};

async fn post(api: &Api<'_>, token: &str, body: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let response = api
        .call("RecordConsentFunction", api_event("POST", "/v1/consents", &[], &[], &headers, Some(body)))
        .await;
    let (status, value) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, value)
}

async fn list(api: &Api<'_>, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let response = api
        .call(
            "ListConsentsFunction",
            api_event("GET", "/v1/consents", &[], query, &[("authorization", &bearer)], None),
        )
        .await;
    let (status, value) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, value)
}

#[tokio::test]
async fn a_persons_history_is_appended_listed_newest_first_and_audited_without_personal_data() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@example.com").await;
    let ada_id = claims(&ada)["sub"].as_str().unwrap().to_owned();
    let bob = api.token("acme", "bob@example.com").await;

    let decisions = [
        r#"{"purpose": "marketing_email", "version": "2026-01", "granted": true}"#,
        r#"{"purpose": "analytics", "version": "v3", "granted": true}"#,
        r#"{"purpose": "marketing_email", "version": "2026-01", "granted": false}"#,
    ];
    let mut recorded = Vec::new();
    for body in decisions {
        stack.round_trips.reset();
        let (status, consent) = post(&api, &ada, body).await;
        assert_eq!(status, 201, "{consent}");
        assert_eq!(stack.round_trips.operations("DynamoDB"), ["TransactWriteItems"], "one write, no read");
        recorded.push(consent);
    }
    assert_eq!(recorded[2]["granted"], false);
    assert!(recorded.iter().all(|c| c["consent_id"].as_str().is_some_and(|id| id.len() == 36)));

    let (status, page) = list(&api, &ada, &[]).await;
    assert_eq!(status, 200);
    let ids: Vec<&Value> = page["consents"].as_array().unwrap().iter().map(|c| &c["consent_id"]).collect();
    let newest_first: Vec<&Value> = recorded.iter().rev().map(|c| &c["consent_id"]).collect();
    assert_eq!(ids, newest_first);
    assert_eq!(page["consents"][0], recorded[2], "the list shows what was recorded");
    assert!(page.get("next_cursor").is_none());

    // Paged.
    let (_, first) = list(&api, &ada, &[("limit", "2")]).await;
    assert_eq!(first["consents"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = list(&api, &ada, &[("limit", "2"), ("cursor", &cursor)]).await;
    assert_eq!(
        second["consents"].as_array().unwrap().iter().map(|c| &c["consent_id"]).collect::<Vec<_>>(),
        [&recorded[0]["consent_id"]]
    );

    // Bob's history is his own.
    let (_, bobs) = list(&api, &bob, &[]).await;
    assert_eq!(bobs["consents"], json!([]));

    // Every decision is an event of the same transaction, naming the user by id only.
    let events: Vec<_> =
        stored_events(&stack, "acme").await.into_iter().filter(|e| e.aggregate_type == "consent").collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["consent.granted", "consent.granted", "consent.withdrawn"]);
    for (event, consent) in events.iter().zip(&recorded) {
        assert_eq!(event.aggregate_id, consent["consent_id"].as_str().unwrap());
        assert_eq!(
            event.payload,
            json!({
                "consent_id": consent["consent_id"], "user_id": ada_id, "purpose": consent["purpose"],
                "version": consent["version"], "granted": consent["granted"],
                "actor": {"type": "user", "id": ada_id},
            })
        );
        assert!(!event.payload.to_string().contains('@'), "no email in {}", event.payload);
    }
}

#[tokio::test]
async fn bad_input_clients_disabled_users_and_anonymous_callers_are_refused() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@example.com").await;
    for (body, field) in [
        (r#"{"purpose": "Marketing", "version": "1", "granted": true}"#, Some("purpose")),
        (r#"{"purpose": "ada@example.com", "version": "1", "granted": true}"#, Some("purpose")),
        (r#"{"purpose": "m", "version": "1 0", "granted": true}"#, Some("version")),
        (r#"{"purpose": "m", "version": "1", "granted": "yes"}"#, Some("granted")),
        (r#"{"purpose": "m", "version": "1"}"#, None),
        (r#"{"purpose": "m", "version": "1", "granted": true, "email": "x"}"#, None),
        ("not json", None),
    ] {
        let (status, problem) = post(&api, &ada, body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}");
        }
        assert!(!problem.to_string().contains("ada@example.com"), "never echoed: {problem}");
    }
    for (limit, cursor) in [("0", None), ("201", None), ("1", Some("not-a-cursor"))] {
        let mut query = vec![("limit", limit)];
        query.extend(cursor.map(|c| ("cursor", c)));
        assert_eq!(list(&api, &ada, &query).await.0, 400, "{query:?}");
    }

    // A machine client is not a person.
    let principal = caas::auth::principal::Principal {
        kind: caas::auth::principal::PrincipalKind::Client,
        id: format!("client-{}", caas::ids::new_id()),
        tenant: caas::tenant::TenantId::parse("acme").unwrap(),
        roles: vec![Role::Admin],
    };
    let client =
        caas::auth::service::issue_access_token(&stack.app("LoginFunction"), &principal).await.unwrap().0;
    let body = r#"{"purpose": "m", "version": "1", "granted": true}"#;
    assert_eq!(post(&api, &client, body).await.0, 403);
    assert_eq!(list(&api, &client, &[]).await.0, 403);

    // A disabled user's still-valid token records nothing (the directory entry is a condition).
    let admin = api.invited("acme", "admin@acme.example", Role::Admin).await;
    let ada_id = claims(&ada)["sub"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {admin}");
    let disable = api_event(
        "PATCH",
        "/v1/users/{id}",
        &[("id", &ada_id)],
        &[],
        &[("authorization", &bearer), ("content-type", "application/json")],
        Some(r#"{"status": "disabled"}"#),
    );
    assert_eq!(api.call("UpdateUserFunction", disable).await.status(), 200);
    assert_eq!(post(&api, &ada, body).await.0, 403);
    let (_, page) = list(&api, &ada, &[]).await;
    assert_eq!(page["consents"], json!([]));

    let anonymous = api_event("POST", "/v1/consents", &[], &[], &[], Some(body));
    assert_problem(&api.call("RecordConsentFunction", anonymous).await, 401);
}
