#![recursion_limit = "256"]

//! The second factor against the emulator: TOTP enrolment and confirmation,
//! sign-in with a code or a recovery code, replay and failure limits,
//! recovery-code regeneration, disabling, an administrator's reset, a tenant
//! that requires a second factor of a role, and the sealed secret.
//!
//! The codes are computed here by an implementation of our own (HMAC-SHA-1 of
//! RFC 2104 over SHA-1, RFC 4226 dynamic truncation, RFC 6238 time steps),
//! checked against the RFCs' test vectors, independent of the code under test.

use caas::clock::Clock;
use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

// ------------------------------------------------------------------ TOTP, independently

/// HMAC-SHA-1 (RFC 2104): 64-byte blocks.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha1::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha1::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// HOTP (RFC 4226 §5.3) with `digits` digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mac = hmac_sha1(secret, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let binary = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(digits), width = digits as usize)
}

/// TOTP (RFC 6238): 30-second steps from the epoch, 6 digits.
fn totp_at(secret: &[u8], unix: i64) -> String {
    hotp(secret, u64::try_from(unix).unwrap() / 30, 6)
}

/// RFC 4648 base32 (no padding) back to bytes.
fn unbase32(text: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        bits = (bits << 5) | u64::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn the_independent_totp_gives_the_rfc_vectors() {
    let secret = b"12345678901234567890";
    // RFC 4226 Appendix D.
    let hotp_vectors =
        ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
    for (counter, expected) in hotp_vectors.iter().enumerate() {
        assert_eq!(hotp(secret, counter as u64, 6), *expected, "counter {counter}");
    }
    // RFC 6238 Appendix B, SHA-1, 8 digits.
    for (time, expected) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(hotp(secret, time / 30, 8), expected, "t = {time}");
    }
    assert_eq!(unbase32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), secret);
}

// ------------------------------------------------------------------ helpers

async fn call(
    api: &Api<'_>,
    function: &str,
    method: &str,
    route: &str,
    id: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Response<Body> {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    let params: Vec<(&str, &str)> = id.map(|id| vec![("id", id)]).unwrap_or_default();
    let body = body.map(|b| b.to_string());
    // Boxed: the handlers' futures are large for a test thread's stack.
    Box::pin(api.call(function, api_event(method, route, &params, &[], &headers, body.as_deref()))).await
}

async fn login(api: &Api<'_>, tenant: &str, email: &str) -> (u16, Value) {
    let body = json!({ "tenant_id": tenant, "email": email, "password": PASSWORD });
    parts(&call(api, "LoginFunction", "POST", "/v1/auth/login", None, None, Some(body)).await)
}

/// A login that must ask for the second factor: its `mfa_token`.
async fn mfa_token(api: &Api<'_>, tenant: &str, email: &str) -> String {
    let (status, body) = login(api, tenant, email).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(api: &Api<'_>, token: &str, factor: (&str, &str)) -> Response<Body> {
    let body = json!({ "mfa_token": token, factor.0: factor.1 });
    call(api, "MfaSignInFunction", "POST", "/v1/auth/mfa", None, None, Some(body)).await
}

fn now(stack: &TestStack) -> i64 {
    stack.clock.now().unix_timestamp()
}

/// The next step's code (the clock moves on 30 s).
fn next_code(stack: &TestStack, secret: &[u8]) -> String {
    stack.clock.advance(time::Duration::seconds(30));
    totp_at(secret, now(stack))
}

/// Enrols and confirms TOTP for the bearer: (secret, recovery codes).
async fn enable(api: &Api<'_>, token: &str) -> (Vec<u8>, Vec<String>) {
    let (status, enrolment) =
        parts(&call(api, "EnrolTotpFunction", "POST", "/v1/mfa/totp", None, Some(token), None).await);
    assert_eq!(status, 200, "{enrolment}");
    let secret = unbase32(enrolment["secret"].as_str().unwrap());
    let code = totp_at(&secret, now(api.stack));
    let confirm = json!({ "code": code });
    let (status, confirmed) = parts(
        &call(api, "ConfirmTotpFunction", "POST", "/v1/mfa/totp/confirm", None, Some(token), Some(confirm))
            .await,
    );
    assert_eq!(status, 200, "{confirmed}");
    let codes =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned());
    (secret, codes.collect())
}

async fn user_item(stack: &TestStack, email: &str) -> Value {
    // The email is stored only sealed: the user is found as login finds them.
    let tenant = caas::tenant::TenantId::parse("acme").unwrap();
    let app = stack.unattributed_app_with("LoginFunction", &[]);
    let parsed = caas::auth::credentials::Email::parse(email).unwrap();
    let user = caas::auth::service::user_by_email(&app, &tenant, &parsed).await.unwrap().expect("the user");
    let users: Vec<Value> =
        scan_items(stack, "kind = :user AND user_id = :id", &[(":user", "user"), (":id", &user.user_id)])
            .await;
    assert_eq!(users.len(), 1, "{users:?}");
    users[0].clone()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn enrol_confirm_and_sign_in_with_a_code_then_a_recovery_code() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let ada = api.token("acme", "ada@example.com").await;

    // Enrolment: the secret once, in an otpauth:// URI too, stored sealed.
    let (status, enrolment) =
        parts(&call(&api, "EnrolTotpFunction", "POST", "/v1/mfa/totp", None, Some(&ada), None).await);
    assert_eq!(status, 200, "{enrolment}");
    let secret_text = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret_text}")), "{uri}");
    assert!(uri.contains("algorithm=SHA1&digits=6&period=30"), "{uri}");
    let secret = unbase32(&secret_text);
    assert_eq!(secret.len(), 20);
    let stored = user_item(&stack, "ada@example.com").await;
    assert_eq!(stored["mfa"]["status"], "pending");
    assert!(!stored.to_string().contains(&secret_text), "never in plaintext");
    // Pending: login does not ask for it yet.
    let (status, tokens) = login(&api, "acme", "ada@example.com").await;
    assert!(status == 200 && tokens["access_token"].is_string(), "{tokens}");

    // A wrong code does not confirm; the right one does, with ten recovery codes.
    let wrong = json!({ "code": "000000" });
    let refused =
        call(&api, "ConfirmTotpFunction", "POST", "/v1/mfa/totp/confirm", None, Some(&ada), Some(wrong))
            .await;
    let code = totp_at(&secret, now(&stack));
    if code != "000000" {
        assert_problem(&refused, 403);
    }
    let confirm = json!({ "code": code });
    let (status, confirmed) = parts(
        &call(&api, "ConfirmTotpFunction", "POST", "/v1/mfa/totp/confirm", None, Some(&ada), Some(confirm))
            .await,
    );
    assert_eq!(status, 200, "{confirmed}");
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(confirmed.get("access_token").is_none(), "a signed-in user's confirmation opens nothing");
    let stored = user_item(&stack, "ada@example.com").await.to_string();
    for code in &recovery {
        assert!(!stored.contains(code.as_str()), "recovery codes are stored hashed");
    }
    assert_problem(
        &call(&api, "EnrolTotpFunction", "POST", "/v1/mfa/totp", None, Some(&ada), None).await,
        409,
    );

    // Login now asks for the second factor; the confirmation's code is spent.
    let token = mfa_token(&api, "acme", "ada@example.com").await;
    assert_problem(&second_step(&api, &token, ("code", &code)).await, 401);
    assert_problem(&call(&api, "MeFunction", "GET", "/v1/me", None, Some(&token), None).await, 401);
    let fresh = next_code(&stack, &secret);
    let (status, tokens) = parts(&second_step(&api, &token, ("code", &fresh)).await);
    assert_eq!(status, 200, "{tokens}");
    assert!(
        tokens["access_token"].is_string()
            && tokens["refresh_token"].is_string()
            && tokens["device_token"].is_string()
    );
    // The mfa_token is single use, and the code too (within its window).
    assert_problem(&second_step(&api, &token, ("code", &fresh)).await, 401);
    let again = mfa_token(&api, "acme", "ada@example.com").await;
    assert_problem(&second_step(&api, &again, ("code", &fresh)).await, 401);
    // One step late still works (±1 step).
    let late = next_code(&stack, &secret);
    stack.clock.advance(time::Duration::seconds(30));
    assert_eq!(second_step(&api, &again, ("code", &late)).await.status(), 200);

    // A recovery code, once, in any spelling.
    let token = mfa_token(&api, "acme", "ada@example.com").await;
    let spelled = recovery[0].to_lowercase().replace('-', " ");
    assert_eq!(second_step(&api, &token, ("recovery_code", &spelled)).await.status(), 200);
    let token = mfa_token(&api, "acme", "ada@example.com").await;
    assert_problem(&second_step(&api, &token, ("recovery_code", &recovery[0])).await, 401);
    assert_eq!(second_step(&api, &token, ("recovery_code", &recovery[1])).await.status(), 200);

    // Regenerated codes replace the old set.
    let (status, regenerated) = parts(
        &call(
            &api,
            "RegenerateRecoveryCodesFunction",
            "POST",
            "/v1/mfa/recovery-codes",
            None,
            Some(&ada),
            None,
        )
        .await,
    );
    assert_eq!(status, 200, "{regenerated}");
    let renewed: Vec<String> = regenerated["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(renewed.len(), 10);
    let token = mfa_token(&api, "acme", "ada@example.com").await;
    assert_problem(&second_step(&api, &token, ("recovery_code", &recovery[2])).await, 401);
    assert_eq!(second_step(&api, &token, ("recovery_code", &renewed[0])).await.status(), 200);

    // Bad input is a 400 problem, never a 500.
    for body in [
        json!({ "mfa_token": token }),
        json!({ "mfa_token": token, "code": "1", "recovery_code": "x" }),
        json!({ "mfa_token": 5, "code": "123456" }),
        json!({ "mfa_token": "x".repeat(5000), "code": "123456" }),
        json!({ "mfa_token": token, "code": "" }),
    ] {
        let response =
            call(&api, "MfaSignInFunction", "POST", "/v1/auth/mfa", None, None, Some(body.clone())).await;
        assert_problem(&response, 400);
    }
    assert_problem(&second_step(&api, "mf1.acme.garbage", ("code", "123456")).await, 401);

    // Disabling needs the password and a current code.
    let disable = |password: &str, code: &str| json!({ "password": password, "code": code });
    let code = next_code(&stack, &secret);
    let wrong_password = disable("not the password at all", &code);
    assert_problem(
        &call(
            &api,
            "DisableTotpFunction",
            "POST",
            "/v1/mfa/totp/disable",
            None,
            Some(&ada),
            Some(wrong_password),
        )
        .await,
        403,
    );
    let right = disable(PASSWORD, &code);
    let response =
        call(&api, "DisableTotpFunction", "POST", "/v1/mfa/totp/disable", None, Some(&ada), Some(right))
            .await;
    assert_eq!(response.status(), 204, "{:?}", parts(&response));
    let (status, tokens) = login(&api, "acme", "ada@example.com").await;
    assert!(status == 200 && tokens["access_token"].is_string(), "{tokens}");
    assert!(user_item(&stack, "ada@example.com").await.get("mfa").is_none());

    // Every change is an event, without the secret or a code in it.
    let events = stored_events(&stack, "acme").await;
    let types: Vec<&str> =
        events.iter().map(|e| e.event_type.as_str()).filter(|t| t.starts_with("mfa.")).collect();
    assert_eq!(
        types,
        ["mfa.enrolment_started", "mfa.enabled", "mfa.recovery_codes_regenerated", "mfa.disabled"],
        "{types:?}"
    );
    let everything = serde_json::to_string(&events).unwrap();
    assert!(!everything.contains(&secret_text));
    for code in recovery.iter().chain(&renewed) {
        assert!(!everything.contains(code.as_str()));
    }
    let logs = captured_logs();
    assert!(!logs.contains(&secret_text), "the secret is never logged");
    assert!(!logs.contains(&recovery[3]), "recovery codes are never logged");
}

#[tokio::test]
async fn wrong_codes_count_per_challenge_and_per_user() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    // The failure limit counts in fixed 15-minute windows; the test's 30 s
    // steps must stay in one.
    stack.start_of_next_window(900);
    let bob = api.token("acme", "bob@example.com").await;
    let (secret, _) = enable(&api, &bob).await;
    let wrong = |code: &str| if code == "111111" { "222222" } else { "111111" };
    // Five wrong codes kill one mfa_token, even for the right code after.
    let token = mfa_token(&api, "acme", "bob@example.com").await;
    for _ in 0..5 {
        let right = totp_at(&secret, now(&stack));
        assert_problem(&second_step(&api, &token, ("code", wrong(&right))).await, 401);
    }
    let right = next_code(&stack, &secret);
    assert_problem(&second_step(&api, &token, ("code", &right)).await, 401);
    // Ten in the window stop every further attempt of the user: 429.
    let token = mfa_token(&api, "acme", "bob@example.com").await;
    for _ in 0..5 {
        assert_problem(&second_step(&api, &token, ("code", wrong(&right))).await, 401);
    }
    let token = mfa_token(&api, "acme", "bob@example.com").await;
    let limited = second_step(&api, &token, ("code", wrong(&right))).await;
    assert_problem(&limited, 429);
    assert!(header(&limited, "retry-after").is_some());
    let right = next_code(&stack, &secret);
    assert_problem(&second_step(&api, &token, ("code", &right)).await, 401);
    // The window passes: the right code works again.
    stack.clock.advance(time::Duration::seconds(900));
    let token = mfa_token(&api, "acme", "bob@example.com").await;
    let right = totp_at(&secret, now(&stack));
    assert_eq!(second_step(&api, &token, ("code", &right)).await.status(), 200);
    // An expired mfa_token is refused.
    let token = mfa_token(&api, "acme", "bob@example.com").await;
    stack.clock.advance(time::Duration::seconds(301));
    let right = totp_at(&secret, now(&stack));
    assert_problem(&second_step(&api, &token, ("code", &right)).await, 401);
}

#[tokio::test]
async fn an_administrator_resets_a_users_second_factor() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let carol = api.token("acme", "carol@example.com").await;
    enable(&api, &carol).await;
    let carol_id = caas_tests::api::claims(&carol)["sub"].as_str().unwrap().to_owned();
    let member = api.token("acme", "dave@example.com").await;
    let reset = |token: String| {
        let id = carol_id.clone();
        let api = &api;
        async move {
            call(api, "ResetMfaFunction", "DELETE", "/v1/users/{id}/mfa", Some(&id), Some(&token), None).await
        }
    };
    assert_problem(&reset(member).await, 403);
    let foreign = api.invited("globex", "admin@globex.example", caas::auth::Role::Admin).await;
    assert_problem(&reset(foreign).await, 404);
    let owner = api.treasurer("acme").await;
    assert_eq!(reset(owner).await.status(), 204);
    let (status, tokens) = login(&api, "acme", "carol@example.com").await;
    assert!(status == 200 && tokens["access_token"].is_string(), "{tokens}");
    let events = stored_events(&stack, "acme").await;
    let reset_event = events.iter().find(|e| e.event_type == "mfa.reset").expect("an mfa.reset event");
    assert_eq!(reset_event.payload["user_id"], carol_id.as_str());
    let actor = reset_event.payload["actor"].clone();
    assert!(actor.is_object(), "{actor}");
    assert_ne!(actor["id"], carol_id.as_str(), "{actor}");
}

#[tokio::test]
async fn a_tenant_can_require_a_second_factor_of_a_role() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    api.token("acme", "member@example.com").await;
    let admin_token = api.invited("acme", "admin@acme.example", caas::auth::Role::Admin).await;
    drop(admin_token);
    let app = stack.app("TenantsFunction");
    // The sample requires a second factor of owners and admins.
    let command: caas::access::tenants::Command =
        serde_json::from_str(&event_file("tenants-require-mfa.json")).unwrap();
    caas::access::tenants::run(&app, "test", command).await.unwrap();
    let bad: caas::access::tenants::Command = serde_json::from_value(
        json!({"action": "update", "tenant_id": "acme", "mfa_required_roles": ["boss"]}),
    )
    .unwrap();
    assert!(matches!(
        caas::access::tenants::run(&app, "test", bad).await,
        Err(caas::AppError::BadRequest { .. })
    ));

    // Members sign in as before; the admin gets an enrolment-only token.
    let (status, tokens) = login(&api, "acme", "member@example.com").await;
    assert!(status == 200 && tokens["access_token"].is_string(), "{tokens}");
    let (status, answer) = login(&api, "acme", "admin@acme.example").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mfa_required"], true);
    assert_eq!(answer["enrolment_required"], true);
    let token = answer["mfa_token"].as_str().unwrap().to_owned();
    assert_problem(&call(&api, "MeFunction", "GET", "/v1/me", None, Some(&token), None).await, 401);
    assert_problem(&second_step(&api, &token, ("code", "123456")).await, 401);
    assert_problem(
        &call(
            &api,
            "RegenerateRecoveryCodesFunction",
            "POST",
            "/v1/mfa/recovery-codes",
            None,
            Some(&token),
            None,
        )
        .await,
        401,
    );

    // Enrolment with that token; its confirmation opens the session.
    let (status, enrolment) =
        parts(&call(&api, "EnrolTotpFunction", "POST", "/v1/mfa/totp", None, Some(&token), None).await);
    assert_eq!(status, 200, "{enrolment}");
    let secret = unbase32(enrolment["secret"].as_str().unwrap());
    let confirm = json!({ "code": totp_at(&secret, now(&stack)) });
    let (status, confirmed) = parts(
        &call(
            &api,
            "ConfirmTotpFunction",
            "POST",
            "/v1/mfa/totp/confirm",
            None,
            Some(&token),
            Some(confirm.clone()),
        )
        .await,
    );
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["recovery_codes"].as_array().unwrap().len(), 10);
    let access = confirmed["access_token"].as_str().expect("the session opens").to_owned();
    assert_eq!(caas_tests::api::claims(&access)["roles"], json!(["admin"]));
    let me = call(&api, "MeFunction", "GET", "/v1/me", None, Some(&access), None).await;
    assert_eq!(me.status(), 200);
    // The token is spent; from now on the admin signs in with the code.
    assert_problem(
        &call(&api, "ConfirmTotpFunction", "POST", "/v1/mfa/totp/confirm", None, Some(&token), Some(confirm))
            .await,
        401,
    );
    let token = mfa_token(&api, "acme", "admin@acme.example").await;
    let code = next_code(&stack, &secret);
    assert_eq!(second_step(&api, &token, ("code", &code)).await.status(), 200);
}

#[tokio::test]
async fn a_sealed_secret_opens_only_for_its_tenant_and_user() {
    let stack = TestStack::new().await;
    let app = stack.app("EnrolTotpFunction");
    let secret = caas::auth::totp::new_secret();
    let sealed = caas::auth::envelope::seal(&app, "acme", "user-1", &secret).await.unwrap();
    let text = serde_json::to_string(&sealed).unwrap();
    assert!(!text.contains(&caas::auth::totp::base32(&secret)), "never in plaintext");
    let app = stack.app("MfaSignInFunction");
    assert_eq!(caas::auth::envelope::open(&app, "acme", "user-1", &sealed).await.unwrap(), secret);
    assert!(caas::auth::envelope::open(&app, "acme", "user-2", &sealed).await.is_err(), "another user");
    assert!(caas::auth::envelope::open(&app, "globex", "user-1", &sealed).await.is_err(), "another tenant");
    let mut tampered = sealed.clone();
    tampered.ciphertext = sealed.nonce.clone();
    assert!(caas::auth::envelope::open(&app, "acme", "user-1", &tampered).await.is_err());
}
