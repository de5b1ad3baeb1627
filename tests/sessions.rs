#![recursion_limit = "256"]

//! The caller's sessions, logout-all, password changes, the absolute session
//! lifetime, and a refresh whose signing fails.

use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let part = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Logs in with a user agent; returns (access token, refresh token).
async fn sign_in(api: &Api<'_>, email: &str, password: &str, agent: &str) -> (String, String) {
    let body = json!({"tenant_id": "acme", "email": email, "password": password}).to_string();
    let mut request = api_event("POST", "/v1/auth/login", &[], &[], &[("user-agent", agent)], Some(&body));
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) =
        request.extensions_mut().get_mut::<lambda_http::request::RequestContext>()
    {
        context.http.user_agent = Some(agent.to_owned());
    }
    let (status, tokens) = parts(&api.call("LoginFunction", request).await);
    assert_eq!(status, 200, "{tokens}");
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(api: &Api<'_>, token: &str) -> Response<Body> {
    let body = json!({ "refresh_token": token }).to_string();
    api.call("RefreshFunction", api_event("POST", "/v1/auth/refresh", &[], &[], &[], Some(&body))).await
}

async fn with_bearer(
    api: &Api<'_>,
    function: &str,
    method: &str,
    route: &str,
    id: Option<&str>,
    token: &str,
    body: Option<Value>,
) -> Response<Body> {
    let bearer = format!("Bearer {token}");
    let params: Vec<(&str, &str)> = id.map(|id| vec![("id", id)]).unwrap_or_default();
    let body = body.map(|b| b.to_string());
    api.call(function, api_event(method, route, &params, &[], &[("authorization", &bearer)], body.as_deref()))
        .await
}

async fn sessions(api: &Api<'_>, token: &str) -> Vec<Value> {
    let (status, body) =
        parts(&with_bearer(api, "ListSessionsFunction", "GET", "/v1/sessions", None, token, None).await);
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sessions_are_listed_ended_one_by_one_and_all_at_once() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;
    let (laptop, laptop_refresh) = sign_in(&api, "ada@example.com", PASSWORD, "laptop browser").await;
    let (phone, phone_refresh) = sign_in(&api, "ada@example.com", PASSWORD, "phone app").await;
    let listed = sessions(&api, &laptop).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let laptop_sid = claims(&laptop)["sid"].as_str().unwrap().to_owned();
    let phone_sid = claims(&phone)["sid"].as_str().unwrap().to_owned();
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["session_id"], laptop_sid.as_str());
    assert_eq!(current[0]["user_agent"], "laptop browser");
    assert!(current[0]["last_used_at"].is_string() && current[0]["created_at"].is_string());
    assert_eq!(listed[0]["session_id"], phone_sid.as_str(), "newest first");

    // The laptop ends the phone's session: its refresh token stops working.
    let ended = with_bearer(
        &api,
        "RevokeSessionFunction",
        "DELETE",
        "/v1/sessions/{id}",
        Some(&phone_sid),
        &laptop,
        None,
    )
    .await;
    assert_eq!(ended.status(), 204);
    assert_problem(&refresh(&api, &phone_refresh).await, 401);
    let again = with_bearer(
        &api,
        "RevokeSessionFunction",
        "DELETE",
        "/v1/sessions/{id}",
        Some(&phone_sid),
        &laptop,
        None,
    )
    .await;
    assert_eq!(again.status(), 204, "idempotent");
    assert_eq!(sessions(&api, &laptop).await.len(), 2);
    // Another user's session, an unknown one and a malformed id do not exist.
    let bob = api.token("acme", "bob@example.com").await;
    for id in [laptop_sid.as_str(), "019ab8f2-5c00-7000-8000-000000000001", "nope"] {
        assert_problem(
            &with_bearer(&api, "RevokeSessionFunction", "DELETE", "/v1/sessions/{id}", Some(id), &bob, None)
                .await,
            404,
        );
    }
    assert_eq!(refresh(&api, &laptop_refresh).await.status(), 200, "bob ended nothing");

    // Logout-all ends every session.
    let (_, other_refresh) = sign_in(&api, "ada@example.com", PASSWORD, "tablet").await;
    assert_eq!(
        with_bearer(&api, "LogoutAllFunction", "POST", "/v1/auth/logout-all", None, &laptop, None)
            .await
            .status(),
        204
    );
    assert_problem(&refresh(&api, &other_refresh).await, 401);
    assert!(sessions(&api, &laptop).await.is_empty());
    assert!(!sign_in(&api, "ada@example.com", PASSWORD, "laptop browser").await.0.is_empty());
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_this_one() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;
    let (current, _) = sign_in(&api, "ada@example.com", PASSWORD, "laptop").await;
    let (_, other_refresh) = sign_in(&api, "ada@example.com", PASSWORD, "phone").await;
    let change = |current_password: &str, new_password: &str| json!({"current_password": current_password, "new_password": new_password});
    let post = |token: String, body: Value| {
        let api = &api;
        async move {
            with_bearer(api, "ChangePasswordFunction", "POST", "/v1/auth/password", None, &token, Some(body))
                .await
        }
    };
    assert_eq!(
        assert_problem(&post(current.clone(), change(PASSWORD, "short")).await, 400)["field"],
        "new_password"
    );
    assert_problem(
        &post(current.clone(), change("not the password", "a new and longer passphrase")).await,
        403,
    );

    stack.round_trips.reset();
    let (status, tokens) =
        parts(&post(current.clone(), change(PASSWORD, "a new and longer passphrase")).await);
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["UpdateItem", "GetItem", "GetItem", "TransactWriteItems"]
    );
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["sid"],
        claims(&current)["sid"],
        "the same session"
    );
    assert_problem(&refresh(&api, &other_refresh).await, 401);
    assert_eq!(
        refresh(&api, tokens["refresh_token"].as_str().unwrap()).await.status(),
        200,
        "this one goes on"
    );
    let listed = sessions(&api, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let old = json!({"tenant_id": "acme", "email": "ada@example.com", "password": PASSWORD}).to_string();
    assert_problem(
        &api.call("LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&old))).await,
        401,
    );
    sign_in(&api, "ada@example.com", "a new and longer passphrase", "laptop").await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_refreshes() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;
    let (_, mut token) = sign_in(&api, "ada@example.com", PASSWORD, "laptop").await;
    let app = stack.app("RefreshFunction");
    let rotate = |token: String| {
        let app = &app;
        async move {
            let request = json_request("POST", "/v1/auth/refresh", &json!({ "refresh_token": token }));
            parts(&refresh::handler(app, request).await.unwrap())
        }
    };
    // Used every 3 days, it never idles out (30 days), until 90 days from sign-in.
    let mut rotations = 0;
    loop {
        stack.clock.advance(time::Duration::days(3));
        let (status, body) = rotate(token.clone()).await;
        if status != 200 {
            assert_eq!(status, 401, "{body}");
            break;
        }
        rotations += 1;
        token = body["refresh_token"].as_str().unwrap().to_owned();
        assert!(rotations < 40, "the session never ended");
    }
    assert_eq!(rotations, 29, "day 87 was the last rotation");
}

#[tokio::test]
async fn a_refresh_whose_signature_fails_spends_nothing() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "ada@example.com").await;
    let (_, token) = sign_in(&api, "ada@example.com", PASSWORD, "laptop").await;
    // A signing alias the template never configures: its calls are not the function's.
    let broken =
        stack.unattributed_app_with("RefreshFunction", &[("TOKEN_SIGNING_KEY_ALIAS", "alias/no-such-key")]);
    let request = json_request("POST", "/v1/auth/refresh", &json!({ "refresh_token": token }));
    let failed = refresh::handler(&broken, request).await.unwrap();
    assert!(failed.status().is_server_error(), "{:?}", parts(&failed));
    // The client's retry is a normal rotation, not a reuse.
    let (status, rotated) = parts(&refresh(&api, &token).await);
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(refresh(&api, rotated["refresh_token"].as_str().unwrap()).await.status(), 200);
}
