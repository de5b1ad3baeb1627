//! Every sample event in events/ runs through its function's handler with the
//! status it is documented to produce. A new event file without an entry here
//! fails the test, so the samples cannot rot.

use caas_tests::*;
use lambda_http::{Body, Request, Response};

async fn run(stack: &TestStack, file: &str) -> Response<Body> {
    run_request(stack, file, lambda_http::request::from_str(&event_file(file)).expect(file)).await
}

async fn run_request(stack: &TestStack, file: &str, request: Request) -> Response<Body> {
    let function = file.split(['-', '.']).next().unwrap_or_default();
    let result = match function {
        "register" => register::handler(&stack.app("RegisterFunction"), request).await,
        "login" => login::handler(&stack.app("LoginFunction"), request).await,
        "refresh" => refresh::handler(&stack.app("RefreshFunction"), request).await,
        "logout" => logout::handler(&stack.app("LogoutFunction"), request).await,
        "jwks" => jwks::handler(&stack.app("JwksFunction"), request).await,
        other => panic!("events/{file}: no function {other:?} is known to this test"),
    };
    result.expect(file)
}

/// Expected status of each event file, in the order they run (state builds up:
/// `register.json` creates the user `login.json` logs in).
const EXPECTED: &[(&str, u16)] = &[
    ("register.json", 201),
    ("register-invalid-email.json", 400),
    ("register-weak-password.json", 400),
    ("login.json", 200),
    ("login-wrong-password.json", 401),
    ("login-unknown-user.json", 401),
    ("login-malformed.json", 400),
    // The sample holds a placeholder token: unknown, so 401 (a live token is
    // substituted below and must give 200).
    ("refresh.json", 401),
    ("logout.json", 204),
    ("jwks.json", 200),
];

#[tokio::test]
async fn every_sample_event_gives_its_documented_status() {
    let stack = TestStack::new().await;
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "every events/*.json has an expected status here, and only those");

    for (file, status) in EXPECTED {
        let response = run(&stack, file).await;
        let (actual, body) = parts(&response);
        assert_eq!(actual, *status, "events/{file}: {body}");
        if actual >= 400 {
            assert_eq!(header(&response, "content-type"), Some("application/problem+json"), "events/{file}");
        }
    }

    // The refresh and logout samples with a live token substituted.
    let (_, tokens) = parts(&run(&stack, "login.json").await);
    let live = tokens["refresh_token"].as_str().unwrap();
    for (file, status) in [("refresh.json", 200), ("logout.json", 204)] {
        let event = event_file(file).replace("rt1.acme.REPLACE_WITH_A_REFRESH_TOKEN_FROM_LOGIN_000000000", live);
        let response = run_request(&stack, file, lambda_http::request::from_str(&event).unwrap()).await;
        assert_eq!(response.status().as_u16(), status, "events/{file} with a live token");
    }
}
