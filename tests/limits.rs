//! Rate limits: per source IP on the unauthenticated routes, per principal
//! and operation on authenticated writes; 429 problems with `Retry-After`.

use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::json;

fn retry_after(response: &Response<Body>) -> i64 {
    assert_problem(response, 429);
    header(response, "retry-after").expect("Retry-After").parse().expect("seconds")
}

async fn register(app: &caas::App, ip: &str, email: &str) -> Response<Body> {
    let body = json!({"tenant_id": "acme", "email": email, "password": PASSWORD});
    register::handler(app, from_source(json_request("POST", "/v1/users", &body), ip)).await.unwrap()
}

#[tokio::test]
async fn registrations_are_limited_per_source_refusals_included() {
    let stack = TestStack::new().await;
    open_tenant(&stack, "acme").await;
    let app = stack.app_with("RegisterFunction", &[("RATE_LIMIT_REGISTER_IP", "4/600")]);
    assert_eq!(register(&app, "127.0.0.2", "a@example.com").await.status(), 201);
    assert_eq!(register(&app, "127.0.0.2", "b@example.com").await.status(), 201);
    // Refused registrations (a duplicate) count too.
    assert_problem(&register(&app, "127.0.0.2", "a@example.com").await, 409);
    assert_eq!(register(&app, "127.0.0.2", "c@example.com").await.status(), 201);
    let limited = register(&app, "127.0.0.2", "d@example.com").await;
    let retry = retry_after(&limited);
    assert!((1..=600).contains(&retry), "{retry}");
    assert_problem(&register(&app, "127.0.0.2", "a@example.com").await, 429);
    // Another source is not affected, and the window ends.
    assert_eq!(register(&app, "127.0.0.3", "d@example.com").await.status(), 201);
    stack.clock.advance(time::Duration::seconds(retry));
    assert_eq!(register(&app, "127.0.0.2", "e@example.com").await.status(), 201);
}

#[tokio::test]
async fn unknown_refresh_tokens_and_rotations_are_limited_per_source() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;
    let app = stack.app_with("RefreshFunction", &[("RATE_LIMIT_REFRESH_IP", "3/60")]);
    let refresh = |token: String, ip: &'static str| {
        let app = &app;
        async move {
            let request = json_request("POST", "/v1/auth/refresh", &json!({ "refresh_token": token }));
            refresh::handler(app, from_source(request, ip)).await.unwrap()
        }
    };
    let login = api_event(
        "POST",
        "/v1/auth/login",
        &[],
        &[],
        &[],
        Some(&json!({"tenant_id": "acme", "email": "ada@example.com", "password": PASSWORD}).to_string()),
    );
    let (_, tokens) = parts(&api.call("LoginFunction", login).await);
    let mut token = tokens["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, rotated) = parts(&refresh(token.clone(), "127.0.0.2").await);
        assert_eq!(status, 200, "{rotated}");
        token = rotated["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_problem(
        &refresh("rt1.acme.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), "127.0.0.2").await,
        401,
    );
    retry_after(&refresh("rt1.acme.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), "127.0.0.2").await);
    // The limit refused the rotation before it spent anything: the token still rotates elsewhere.
    retry_after(&refresh(token.clone(), "127.0.0.2").await);
    assert_eq!(refresh(token, "127.0.0.3").await.status(), 200);
}

#[tokio::test]
async fn authenticated_writes_are_limited_per_principal_and_operation_in_their_own_transaction() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner_invitation = open_tenant(&stack, "acme").await.expect("a new tenant");
    let owner = json!({"tenant_id": "acme", "email": owner_invitation.email, "password": PASSWORD, "invitation": owner_invitation.token});
    assert_eq!(
        api.call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&owner.to_string())))
            .await
            .status(),
        201
    );
    let credentials = json!({"tenant_id": "acme", "email": owner_invitation.email, "password": PASSWORD});
    let (_, tokens) = parts(
        &api.call(
            "LoginFunction",
            api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&credentials.to_string())),
        )
        .await,
    );
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let app = stack.app_with("CreateInvitationFunction", &[("RATE_LIMIT_WRITES", "2/60")]);
    let invite = |n: u32| {
        let body = json!({"email": format!("guest{n}@example.com"), "role": "member"}).to_string();
        let request =
            api_event("POST", "/v1/invitations", &[], &[], &[("authorization", &bearer)], Some(&body));
        let app = &app;
        async move { create_invitation::handler(app, request).await.unwrap() }
    };
    assert_eq!(invite(1).await.status(), 201);
    stack.round_trips.reset();
    assert_eq!(invite(2).await.status(), 201);
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["TransactWriteItems"],
        "the hit rides in the write"
    );
    let retry = retry_after(&invite(3).await);
    assert!((1..=60).contains(&retry));
    stack.clock.advance(time::Duration::seconds(retry));
    assert_eq!(invite(4).await.status(), 201);
}
