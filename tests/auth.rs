//! Auth functions against the emulator: register, login, refresh, logout, jwks.

use caas_tests::*;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn register(stack: &TestStack, tenant: &str, email: &str, password: &str) -> (u16, Value) {
    open_tenant(stack, tenant).await;
    let app = stack.app("RegisterFunction");
    let request = json_request(
        "POST",
        "/v1/users",
        &json!({"tenant_id": tenant, "email": email, "password": password}),
    );
    parts(&register::handler(&app, request).await.unwrap())
}

async fn login_response(
    app: &caas::App,
    tenant: &str,
    email: &str,
    password: &str,
) -> lambda_http::Response<lambda_http::Body> {
    let request = json_request(
        "POST",
        "/v1/auth/login",
        &json!({"tenant_id": tenant, "email": email, "password": password}),
    );
    login::handler(app, request).await.unwrap()
}

/// A login in acme from `ip`, presenting `device_token` if given.
async fn device_login(
    app: &caas::App,
    ip: &str,
    email: &str,
    password: &str,
    device_token: Option<&str>,
) -> lambda_http::Response<lambda_http::Body> {
    let mut body = json!({"tenant_id": "acme", "email": email, "password": password});
    if let Some(token) = device_token {
        body["device_token"] = token.into();
    }
    login::handler(app, from_source(json_request("POST", "/v1/auth/login", &body), ip)).await.unwrap()
}

async fn login(stack: &TestStack, tenant: &str, email: &str, password: &str) -> (u16, Value) {
    parts(&login_response(&stack.app("LoginFunction"), tenant, email, password).await)
}

async fn refresh(stack: &TestStack, token: &str) -> (u16, Value) {
    let request = json_request("POST", "/v1/auth/refresh", &json!({ "refresh_token": token }));
    parts(&refresh::handler(&stack.app("RefreshFunction"), request).await.unwrap())
}

async fn logout(stack: &TestStack, token: &str) -> u16 {
    let request = json_request("POST", "/v1/auth/logout", &json!({ "refresh_token": token }));
    logout::handler(&stack.app("LogoutFunction"), request).await.unwrap().status().as_u16()
}

async fn stored_user(stack: &TestStack, tenant: &str, email: &str) -> caas::store::users::UserRecord {
    let tenant = caas::tenant::TenantId::parse(tenant).unwrap();
    let email = caas::auth::credentials::Email::parse(email).unwrap();
    caas::auth::service::user_by_email(&stack.unattributed_app_with("LoginFunction", &[]), &tenant, &email)
        .await
        .unwrap()
        .expect("user stored")
}

/// Verifies an access token with the key published by the jwks function,
/// decoded independently of the shared crate's key handling.
async fn verify_with_jwks(stack: &TestStack, token: &str) -> Value {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use p256::ecdsa::signature::Verifier;
    let app = stack.app("JwksFunction");
    let (status, jwks) =
        parts(&jwks::handler(&app, api_request("GET", "/.well-known/jwks.json", &[], None)).await.unwrap());
    assert_eq!(status, 200);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    let mut sec1 = vec![4u8];
    sec1.extend(B64.decode(key["x"].as_str().unwrap()).unwrap());
    sec1.extend(B64.decode(key["y"].as_str().unwrap()).unwrap());
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
    verifying.verify(signed.as_bytes(), &signature).expect("signature verifies with the JWKS key");
    let header: Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], key["kid"]);
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn register_login_refresh_reuse_and_logout() {
    let stack = TestStack::new().await;
    let (status, user) = register(&stack, "acme", " Ada@Example.com ", PASSWORD).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["tenant_id"], "acme");
    assert!(caas::ids::is_valid_id(user["user_id"].as_str().unwrap()));

    let stored = stored_user(&stack, "acme", "ada@example.com").await;
    assert!(stored.password_hash.starts_with("$argon2id$"), "only the hash is stored");
    let created =
        time::OffsetDateTime::parse(&stored.created_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(
        stored.created_at_ms,
        Some(created.unix_timestamp() * 1000),
        "written in the expand (v2) shape"
    );
    assert!(!stored.password_hash.contains(PASSWORD));

    let (status, tokens) = login(&stack, "acme", "ADA@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let claims = verify_with_jwks(&stack, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], user["user_id"]);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["iss"], "caas");
    assert_eq!(claims["aud"], "caas-api");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert!(stored_user(&stack, "acme", "ada@example.com").await.last_login_at.is_some());

    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(first_refresh.len() >= 43, "at least 256 random bits");
    let (status, rotated) = refresh(&stack, &first_refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    verify_with_jwks(&stack, rotated["access_token"].as_str().unwrap()).await;

    // Reuse of the spent token: 401, and the whole family is revoked.
    assert_eq!(refresh(&stack, &first_refresh).await.0, 401);
    assert_eq!(refresh(&stack, &second_refresh).await.0, 401, "family revoked by reuse");

    // A new session, logged out: its token no longer refreshes.
    let (_, tokens) = login(&stack, "acme", "ada@example.com", PASSWORD).await;
    let token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(logout(&stack, token).await, 204);
    assert_eq!(refresh(&stack, token).await.0, 401);
    assert_eq!(logout(&stack, token).await, 204, "logout is idempotent");
    assert_eq!(logout(&stack, "rt1.acme.not-a-real-token").await, 204);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_rotate_at_most_once() {
    let stack = TestStack::new().await;
    register(&stack, "acme", "ada@example.com", PASSWORD).await;
    let (_, tokens) = login(&stack, "acme", "ada@example.com", PASSWORD).await;
    let token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let attempts = futures::future::join_all((0..8).map(|_| refresh(&stack, &token))).await;
    let ok: Vec<_> = attempts.iter().filter(|(s, _)| *s == 200).collect();
    assert!(ok.len() <= 1, "one token, at most one rotation: {attempts:?}");
    assert!(attempts.iter().all(|(s, _)| *s == 200 || *s == 401), "{attempts:?}");
    // A second presentation happened, so the family is revoked whatever won.
    if let Some((_, winner)) = ok.first() {
        assert_eq!(refresh(&stack, winner["refresh_token"].as_str().unwrap()).await.0, 401);
    }
}

#[tokio::test]
async fn duplicate_emails_conflict_even_when_concurrent() {
    let stack = TestStack::new().await;
    assert_eq!(register(&stack, "acme", "bob@example.com", PASSWORD).await.0, 201);
    let (status, body) = register(&stack, "acme", "BOB@example.com", PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "urn:caas:problem:conflict");

    let results =
        futures::future::join_all((0..10).map(|_| register(&stack, "acme", "carol@example.com", PASSWORD)))
            .await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 9, "{statuses:?}");
}

#[tokio::test]
async fn same_email_in_two_tenants_is_two_users() {
    let stack = TestStack::new().await;
    let (_, acme) = register(&stack, "acme", "dora@example.com", PASSWORD).await;
    let (status, globex) = register(&stack, "globex", "dora@example.com", "another long password").await;
    assert_eq!(status, 201);
    assert_ne!(acme["user_id"], globex["user_id"]);
    assert_eq!(login(&stack, "acme", "dora@example.com", PASSWORD).await.0, 200);
    assert_eq!(
        login(&stack, "globex", "dora@example.com", PASSWORD).await.0,
        401,
        "acme's password is not globex's"
    );
    let (status, tokens) = login(&stack, "globex", "dora@example.com", "another long password").await;
    assert_eq!(status, 200);
    let claims = verify_with_jwks(&stack, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["tenant"], "globex");
    assert_eq!(claims["sub"], globex["user_id"]);
}

#[tokio::test]
async fn lockout_after_failures_and_recovery_after_the_window() {
    let stack = TestStack::new().await;
    register(&stack, "acme", "eve@example.com", PASSWORD).await;
    let app = stack.app("LoginFunction");

    let unknown = login_response(&app, "acme", "nobody@example.com", PASSWORD).await;
    let unknown_body = assert_problem(&unknown, 401);
    for _ in 0..5 {
        let wrong = login_response(&app, "acme", "eve@example.com", "wrong password!!").await;
        assert_eq!(
            assert_problem(&wrong, 401),
            unknown_body,
            "same body for wrong password and unknown user"
        );
    }
    let locked = login_response(&app, "acme", "eve@example.com", PASSWORD).await;
    assert_eq!(
        assert_problem(&locked, 401),
        unknown_body,
        "locked: same answer even with the right password"
    );
    let user = stored_user(&stack, "acme", "eve@example.com").await;
    assert!(user.locked_until.is_some());

    // Failures while locked do not extend the lock.
    let locked_until = user.locked_until;
    login_response(&app, "acme", "eve@example.com", "wrong password!!").await;
    assert_eq!(stored_user(&stack, "acme", "eve@example.com").await.locked_until, locked_until);

    stack.clock.advance(time::Duration::minutes(14));
    assert_eq!(
        parts(&login_response(&app, "acme", "eve@example.com", PASSWORD).await).0,
        401,
        "still locked"
    );
    stack.clock.advance(time::Duration::minutes(1));
    assert_eq!(
        parts(&login_response(&app, "acme", "eve@example.com", PASSWORD).await).0,
        200,
        "lock expired"
    );
    let user = stored_user(&stack, "acme", "eve@example.com").await;
    assert_eq!((user.failed_logins, user.locked_until), (0, None));

    // Failures spread beyond the window never add up to a lock.
    for _ in 0..8 {
        login_response(&app, "acme", "eve@example.com", "wrong password!!").await;
        stack.clock.advance(time::Duration::minutes(4));
    }
    assert_eq!(parts(&login_response(&app, "acme", "eve@example.com", PASSWORD).await).0, 200);
}

#[tokio::test]
async fn concurrent_failures_are_all_counted() {
    let stack = TestStack::new().await;
    register(&stack, "acme", "fay@example.com", PASSWORD).await;
    let app = stack.app("LoginFunction");
    let results = futures::future::join_all(
        (0..4).map(|_| login_response(&app, "acme", "fay@example.com", "wrong password!!")),
    )
    .await;
    assert!(results.iter().all(|r| r.status() == 401));
    assert_eq!(stored_user(&stack, "acme", "fay@example.com").await.failed_logins, 4);
}

#[tokio::test]
async fn legacy_bcrypt_user_logs_in_and_is_rehashed() {
    use caas::store::{tx::Tx, users};
    let stack = TestStack::new().await;
    open_tenant(&stack, "acme").await;
    let table = stack.table();
    let legacy = users::UserRecord {
        tenant_id: "acme".into(),
        user_id: caas::ids::new_id(),
        email: Some("legacy@example.com".into()),
        email_lookup: None,
        email_sealed: None,
        key_name: String::new(),
        password_hash: bcrypt::hash("legacy-password", 4).unwrap(),
        created_at: "2020-01-01T00:00:00Z".into(),
        created_at_ms: None,
        last_login_at: None,
        failed_logins: 0,
        failed_window_started_at: None,
        locked_until: None,
        role: caas::auth::Role::Member,
        status: users::UserStatus::Active,
        session_epoch: 0,
        devices: None,
        mfa: None,
    };
    let tenant = caas::tenant::TenantId::parse("acme").unwrap();
    let event = caas::outbox::OutboxEvent::new(
        &tenant,
        "user",
        &legacy.user_id,
        "user.imported",
        time::OffsetDateTime::now_utc(),
        "seed",
        json!({}),
    );
    Tx::new(&table, &event)
        .unwrap()
        .push(users::insert_legacy(&table, &legacy).unwrap())
        .commit(&stack.clients.dynamodb)
        .await
        .unwrap();

    // Flagged by the legacy-user migration (v4).
    let key = std::collections::HashMap::from([
        (
            "pk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("T#acme#USER#legacy@example.com".into()),
        ),
        ("sk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S("USER".into())),
    ]);
    let raw = |key: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
        stack.clients.dynamodb.get_item().table_name(table.clone()).set_key(Some(key)).send()
    };
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(table.clone())
        .set_key(Some(key.clone()))
        .update_expression("SET needs_rehash = :yes")
        .expression_attribute_values(":yes", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    assert_eq!(login(&stack, "acme", "legacy@example.com", "wrong-password").await.0, 401);
    assert!(stored_user(&stack, "acme", "legacy@example.com").await.password_hash.starts_with("$2b$"));
    let (status, body) = login(&stack, "acme", "legacy@example.com", "legacy-password").await;
    assert_eq!(status, 200, "{body}");
    let rehashed = stored_user(&stack, "acme", "legacy@example.com").await.password_hash;
    assert!(rehashed.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{rehashed}");
    let item = raw(key).await.unwrap().item.unwrap();
    assert!(!item.contains_key("needs_rehash"), "the legacy flag goes with the legacy hash");
    assert_eq!(login(&stack, "acme", "legacy@example.com", "legacy-password").await.0, 200);
}

#[tokio::test]
async fn weaker_argon2_hashes_are_upgraded_and_production_cost_works_end_to_end() {
    let stack = TestStack::new().await;
    // Registered under a cheap cost...
    register(&stack, "acme", "gus@example.com", PASSWORD).await;
    // ...logged in by a function configured with the template's defaults.
    let production = stack.app_with(
        "LoginFunction",
        &[("ARGON2_MEMORY_KIB", "65536"), ("ARGON2_ITERATIONS", "3"), ("ARGON2_PARALLELISM", "1")],
    );
    assert_eq!(production.config.argon2, caas::config::Argon2Cost::default());
    let response = login_response(&production, "acme", "gus@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let upgraded = stored_user(&stack, "acme", "gus@example.com").await.password_hash;
    assert!(upgraded.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{upgraded}");
    // And the production-cost hash verifies on the next login.
    assert_eq!(login_response(&production, "acme", "gus@example.com", PASSWORD).await.status(), 200);
    assert_eq!(
        login_response(&production, "acme", "gus@example.com", "not the password").await.status(),
        401
    );
}

#[tokio::test]
async fn access_tokens_are_checked_for_expiry_audience_issuer_and_signature() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let stack = TestStack::new().await;
    register(&stack, "acme", "hal@example.com", PASSWORD).await;
    let (_, tokens) = login(&stack, "acme", "hal@example.com", PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let app = stack.app("JwksFunction");
    let bearer = |token: &str| {
        api_request("GET", "/v1/accounts", &[("authorization", &format!("Bearer {token}"))], None)
    };

    let who = caas::auth::authenticate(&app, &bearer(&token)).await.expect("valid token");
    assert_eq!(who.tenant.as_str(), "acme");

    let (header, rest) = token.split_once('.').unwrap();
    let (claims, signature) = rest.split_once('.').unwrap();
    let mut forged: Value = serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
    forged["tenant"] = "globex".into();
    let forged_claims = B64.encode(forged.to_string());
    let mut rejected = vec![
        format!("{header}.{forged_claims}.{signature}"),
        format!("{}.{claims}.", B64.encode(r#"{"alg":"none","typ":"at+jwt"}"#)),
        format!("{}.{claims}.{signature}", B64.encode(r#"{"alg":"HS256","typ":"at+jwt"}"#)),
        format!("{header}.{claims}.{}", B64.encode([0u8; 64])),
        "garbage".to_owned(),
    ];
    rejected.push(format!("{header}.{claims}"));
    for bad in &rejected {
        let error = caas::auth::authenticate(&app, &bearer(bad)).await.expect_err(bad);
        assert!(matches!(error, caas::AppError::Unauthorized(_)), "{bad}: {error:?}");
    }
    assert!(caas::auth::authenticate(&app, &api_request("GET", "/", &[], None)).await.is_err(), "no header");
    assert!(
        caas::auth::authenticate(
            &app,
            &api_request("GET", "/", &[("authorization", &format!("Basic {token}"))], None)
        )
        .await
        .is_err()
    );

    let other_audience = stack.app_with("JwksFunction", &[("TOKEN_AUDIENCE", "another-api")]);
    assert!(caas::auth::authenticate(&other_audience, &bearer(&token)).await.is_err(), "wrong aud");
    let other_issuer = stack.app_with("JwksFunction", &[("TOKEN_ISSUER", "someone-else")]);
    assert!(caas::auth::authenticate(&other_issuer, &bearer(&token)).await.is_err(), "wrong iss");

    stack.clock.advance(time::Duration::seconds(899));
    assert!(caas::auth::authenticate(&app, &bearer(&token)).await.is_ok(), "still valid at 899 s");
    stack.clock.advance(time::Duration::seconds(1));
    assert!(caas::auth::authenticate(&app, &bearer(&token)).await.is_err(), "expired at 900 s");
}

#[tokio::test]
async fn bad_input_is_a_clear_400_never_a_500() {
    let stack = TestStack::new().await;
    let app = stack.app("RegisterFunction");
    let cases: Vec<(String, Option<&str>)> = vec![
        ("{not json".into(), None),
        (r#"{"email":"a@example.com","password":"long enough password"}"#.into(), Some("tenant_id")),
        (r#"{"tenant_id":"acme","password":"long enough password"}"#.into(), Some("email")),
        (r#"{"tenant_id":"acme","email":"a@example.com"}"#.into(), Some("password")),
        (r#"{"tenant_id":42,"email":"a@example.com","password":"long enough password"}"#.into(), Some("tenant_id")),
        (r#"{"tenant_id":"ACME!","email":"a@example.com","password":"long enough password"}"#.into(), Some("tenant_id")),
        (r#"{"tenant_id":"acme","email":"not-an-email","password":"long enough password"}"#.into(), Some("email")),
        (r#"{"tenant_id":"acme","email":"a@example.com","password":"short"}"#.into(), Some("password")),
        (format!(r#"{{"tenant_id":"acme","email":"a@example.com","password":"{}"}}"#, "p".repeat(1025)), Some("password")),
        (format!(r#"{{"tenant_id":"acme","email":"{}@example.com","password":"long enough password"}}"#, "a".repeat(300)), Some("email")),
        (r#"{"tenant_id":"acme","email":"a@example.com","password":"long enough password","role":"admin"}"#.into(), Some("role")),
        ("[]".into(), Some("body")),
    ];
    for (body, field) in cases {
        let response =
            register::handler(&app, api_request("POST", "/v1/users", &[], Some(&body))).await.unwrap();
        let problem = assert_problem(&response, 400);
        assert_eq!(problem["field"].as_str(), field, "{body}");
    }
    let huge =
        format!(r#"{{"tenant_id":"acme","email":"a@example.com","password":"{}"}}"#, "p".repeat(70_000));
    assert_problem(
        &register::handler(&app, api_request("POST", "/v1/users", &[], Some(&huge))).await.unwrap(),
        413,
    );
    assert_problem(&register::handler(&app, api_request("POST", "/v1/users", &[], None)).await.unwrap(), 400);

    let login_app = stack.app("LoginFunction");
    let response = login::handler(
        &login_app,
        api_request("POST", "/v1/auth/login", &[], Some(r#"{"tenant_id":"acme"}"#)),
    )
    .await
    .unwrap();
    assert_problem(&response, 400);
    let refresh_app = stack.app("RefreshFunction");
    for body in [r#"{}"#, r#"{"refresh_token":7}"#] {
        let response =
            refresh::handler(&refresh_app, api_request("POST", "/v1/auth/refresh", &[], Some(body)))
                .await
                .unwrap();
        assert_problem(&response, 400);
    }
    let response = refresh::handler(
        &refresh_app,
        json_request("POST", "/v1/auth/refresh", &json!({"refresh_token": "x".repeat(300)})),
    )
    .await
    .unwrap();
    assert_problem(&response, 400);
    let response = refresh::handler(
        &refresh_app,
        json_request("POST", "/v1/auth/refresh", &json!({"refresh_token": "garbage"})),
    )
    .await
    .unwrap();
    assert_problem(&response, 401);
}

#[tokio::test]
async fn correlation_ids_are_echoed_and_secrets_never_logged() {
    let stack = TestStack::new().await;
    let secret_password = format!("secret-{}", uuid::Uuid::new_v4());
    register(&stack, "acme", "ivy@example.com", &secret_password).await;
    let app = stack.app("LoginFunction");
    let request = api_request(
        "POST",
        "/v1/auth/login",
        &[("x-correlation-id", "corr-123")],
        Some(&json!({"tenant_id":"acme","email":"ivy@example.com","password": secret_password}).to_string()),
    );
    let response = login::handler(&app, request).await.unwrap();
    assert_eq!(header(&response, "x-correlation-id"), Some("corr-123"));
    let (_, tokens) = parts(&response);
    let generated = login_response(&app, "acme", "ivy@example.com", "wrong password here").await;
    assert!(header(&generated, "x-correlation-id").is_some_and(caas::ids::is_valid_id));
    let refreshed = refresh(&stack, tokens["refresh_token"].as_str().unwrap()).await.1;
    logout(&stack, refreshed["refresh_token"].as_str().unwrap()).await;
    let hash = stored_user(&stack, "acme", "ivy@example.com").await.password_hash;

    let logs = captured_logs();
    assert!(logs.contains("corr-123"), "the correlation id reaches the logs");
    let hash_part = hash.rsplit('$').next().unwrap();
    for secret in [
        secret_password.as_str(),
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
        refreshed["refresh_token"].as_str().unwrap(),
        refreshed["access_token"].as_str().unwrap(),
        hash_part,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    for line in logs.lines().filter(|l| l.contains("corr-123")) {
        let parsed: Value = serde_json::from_str(line).expect("every log line is JSON");
        assert!(parsed.get("level").is_some());
    }
}

#[tokio::test]
async fn login_costs_one_read_one_transaction_and_one_signature() {
    let stack = TestStack::new().await;
    register(&stack, "acme", "kim@example.com", PASSWORD).await;
    let app = stack.app("LoginFunction");
    stack.round_trips.reset();
    let response = login_response(&app, "acme", "kim@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    // An untrusted client (no device token): the per-source limit is one conditional update.
    // The user is read by both of its possible keys at once (the email's lookup hash; the
    // email of a user the migration has not moved yet).
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["BatchGetItem", "UpdateItem", "TransactWriteItems"]
    );
    // The container's first login derives the lookup key (once); then only the signature.
    assert_eq!(stack.round_trips.operations("kms"), ["GenerateMac", "Sign"]);
    let device = parts(&response).1["device_token"].as_str().unwrap().to_owned();

    stack.round_trips.reset();
    let trusted = device_login(&app, "127.0.0.1", "kim@example.com", PASSWORD, Some(&device)).await;
    assert_eq!(trusted.status(), 200);
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["BatchGetItem", "TransactWriteItems"],
        "a trusted device"
    );
    assert_eq!(stack.round_trips.operations("kms"), ["Sign"]);

    stack.round_trips.reset();
    assert_eq!(login_response(&app, "acme", "nobody@example.com", PASSWORD).await.status(), 401);
    assert_eq!(
        stack.round_trips.operations("dynamodb"),
        ["BatchGetItem", "UpdateItem"],
        "unknown user: no write but the count"
    );
    assert!(stack.round_trips.operations("kms").is_empty());

    let (_, tokens) = login(&stack, "acme", "kim@example.com", PASSWORD).await;
    stack.round_trips.reset();
    assert_eq!(refresh(&stack, tokens["refresh_token"].as_str().unwrap()).await.0, 200);
    assert_eq!(stack.round_trips.operations("dynamodb"), ["GetItem", "TransactWriteItems"]);
    assert_eq!(stack.round_trips.operations("kms"), ["Sign"]);
}

#[tokio::test]
async fn device_tokens_keep_the_victim_in_while_attackers_are_limited() {
    let stack = TestStack::new().await;
    register(&stack, "acme", "vic@example.com", PASSWORD).await;
    register(&stack, "acme", "other@example.com", PASSWORD).await;
    let app = stack.app("LoginFunction");
    let unknown = assert_problem(&login_response(&app, "acme", "nobody@example.com", PASSWORD).await, 401);
    let first = device_login(&app, "127.0.0.3", "vic@example.com", PASSWORD, None).await;
    let (status, tokens) = parts(&first);
    assert_eq!(status, 200, "{tokens}");
    let mut device = tokens["device_token"].as_str().expect("a device token").to_owned();

    // The attacker (127.0.0.2, no device token) tries wrong passwords for
    // hours; the victim signs in from their device all along.
    let (mut refused, mut limited) = (0, 0);
    for attempt in 0..300 {
        let response = device_login(&app, "127.0.0.2", "vic@example.com", "wrong password!!", None).await;
        match response.status().as_u16() {
            401 => {
                assert_eq!(assert_problem(&response, 401), unknown, "the same 401 body");
                refused += 1;
            }
            429 => {
                let retry: i64 = header(&response, "retry-after").unwrap().parse().unwrap();
                assert!((1..=300).contains(&retry), "{retry}");
                assert_problem(&response, 429);
                limited += 1;
            }
            other => panic!("attacker got {other}"),
        }
        if attempt % 10 == 0 {
            let victim = device_login(&app, "127.0.0.3", "vic@example.com", PASSWORD, Some(&device)).await;
            let (status, tokens) = parts(&victim);
            assert_eq!(status, 200, "the victim, attempt {attempt}: {tokens}");
            device = tokens["device_token"].as_str().unwrap().to_owned();
            stack.clock.advance(time::Duration::minutes(1));
        }
    }
    assert!(limited >= 90 && refused >= 100, "limited {limited}, refused {refused}");
    // Without a device token even the right password is refused now, with the same 401...
    for _ in 0..5 {
        device_login(&app, "127.0.0.4", "vic@example.com", "wrong password!!", None).await;
    }
    let locked = device_login(&app, "127.0.0.4", "vic@example.com", PASSWORD, None).await;
    assert_eq!(assert_problem(&locked, 401), unknown);
    // ...and a device token is bound to its account.
    let borrowed =
        device_login(&app, "127.0.0.4", "other@example.com", "wrong password!!", Some(&device)).await;
    assert_problem(&borrowed, 401);
    let user = stored_user(&stack, "acme", "other@example.com").await;
    assert_eq!(user.failed_logins, 1, "counted as an untrusted client of the other account");

    // A device's own failures end its trust at the threshold.
    for _ in 0..5 {
        let wrong =
            device_login(&app, "127.0.0.3", "vic@example.com", "wrong password!!", Some(&device)).await;
        assert_eq!(assert_problem(&wrong, 401), unknown);
    }
    let untrusted = device_login(&app, "127.0.0.3", "vic@example.com", PASSWORD, Some(&device)).await;
    assert_eq!(
        assert_problem(&untrusted, 401),
        unknown,
        "the device is untrusted, the account locked for those"
    );
}

#[tokio::test]
async fn emails_and_passwords_are_normalized_before_they_are_compared() {
    let stack = TestStack::new().await;
    let composed_password = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    let (status, user) = register(&stack, "acme", "Ren\u{e9}@B\u{fc}cher.example", composed_password).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "ren\u{e9}@xn--bcher-kva.example");
    // The decomposed forms of both are the same credentials.
    let (status, _) = login(
        &stack,
        "acme",
        "rene\u{301}@bu\u{308}cher.example",
        "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e",
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = register(&stack, "acme", "ren\u{e9}@xn--bcher-kva.example", PASSWORD).await;
    assert_eq!(status, 409, "one address: {body}");
    let (status, body) = register(&stack, "acme", "ren\u{e9}\u{200b}@b\u{fc}cher.example", PASSWORD).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("email")), "a zero-width space");
}
