//! Every sample event in events/ runs through its function's handler with the
//! outcome it is documented to produce. A new event file without an entry here
//! fails the test, so the samples cannot rot.
//!
//! API samples carry placeholders (`{{ACCESS_TOKEN}}`, `{{ACCOUNT_ID}}`,
//! `{{PAYER_ACCOUNT_ID}}`, `{{PAYEE_ACCOUNT_ID}}`, `{{PAYMENT_ID}}`,
//! `{{OWNER_ACCESS_TOKEN}}`, `{{AUDITOR_ACCESS_TOKEN}}`, `{{INVITATION_TOKEN}}`,
//! `{{USER_ID}}`, `{{SESSION_ID}}`, `{{PASSWORD_USER_ACCESS_TOKEN}}`,
//! `{{CLIENT_ID}}`, `{{CLIENT_SECRET}}`, `{{CONVERSATION_ID}}`, `{{PEER_USER_ID}}`,
//! `{{THIRD_USER_ID}}`) that the test fills with live values,
//! as a user of `sam local invoke` would. Errors are problem documents, but the
//! OAuth token endpoint's (RFC 6749 JSON).

// The dispatch of every route nests deeply enough to pass the default query depth.
#![recursion_limit = "256"]

use caas_tests::api::{Api, api_event, dispatch};
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::json;
use std::collections::HashMap;

/// API samples: file, function (logical id), expected status, in the order
/// they run (state builds up: `register.json` creates the user `login.json`
/// logs in).
const API_EVENTS: &[(&str, &str, u16)] = &[
    ("register.json", "RegisterFunction", 201),
    ("register-invalid-email.json", "RegisterFunction", 400),
    ("register-weak-password.json", "RegisterFunction", 400),
    ("login.json", "LoginFunction", 200),
    ("login-wrong-password.json", "LoginFunction", 401),
    ("login-unknown-user.json", "LoginFunction", 401),
    ("login-malformed.json", "LoginFunction", 400),
    // The sample holds a placeholder token: unknown, so 401 (a live token is
    // substituted below and must give 200).
    ("refresh.json", "RefreshFunction", 401),
    ("logout.json", "LogoutFunction", 204),
    ("jwks.json", "JwksFunction", 200),
    ("create-account.json", "CreateAccountFunction", 201),
    // A hot account: its balance in 8 shards.
    ("create-account-hot.json", "CreateAccountFunction", 201),
    ("create-account-unknown-currency.json", "CreateAccountFunction", 400),
    ("get-account.json", "GetAccountFunction", 200),
    ("get-balance.json", "GetBalanceFunction", 200),
    ("get-statement.json", "GetStatementFunction", 200),
    ("list-transactions.json", "ListTransactionsFunction", 200),
    ("create-payment.json", "CreatePaymentFunction", 201),
    ("create-payment-float-amount.json", "CreatePaymentFunction", 400),
    ("create-payment-missing-idempotency-key.json", "CreatePaymentFunction", 400),
    ("capture-payment.json", "CapturePaymentFunction", 200),
    ("void-payment.json", "VoidPaymentFunction", 200),
    ("refund-payment.json", "RefundPaymentFunction", 201),
    ("get-payment.json", "GetPaymentFunction", 200),
    ("verify-audit.json", "VerifyAuditFunction", 200),
    ("export-audit.json", "ExportAuditFunction", 200),
    ("audit-keys.json", "AuditKeysFunction", 200),
    ("list-audit.json", "ListAuditFunction", 200),
    ("list-audit-bad-limit.json", "ListAuditFunction", 400),
    // The audit routes are for owners, admins and auditors; ada is a member.
    ("list-audit-by-member.json", "ListAuditFunction", 403),
    ("me.json", "MeFunction", 200),
    ("create-invitation.json", "CreateInvitationFunction", 201),
    ("create-invitation-owner-by-member.json", "CreateInvitationFunction", 403),
    ("register-invited.json", "RegisterFunction", 201),
    ("list-users.json", "ListUsersFunction", 200),
    ("update-user.json", "UpdateUserFunction", 200),
    // ada starts a TOTP enrolment; a wrong code does not confirm it (a
    // placeholder code is right by chance once in ~300,000 runs).
    ("enrol-totp.json", "EnrolTotpFunction", 200),
    ("confirm-totp-wrong-code.json", "ConfirmTotpFunction", 403),
    // The owner has no second factor to disable or renew codes of.
    ("disable-totp-not-enrolled.json", "DisableTotpFunction", 409),
    ("regenerate-recovery-codes-not-enrolled.json", "RegenerateRecoveryCodesFunction", 409),
    ("mfa-sign-in-unknown-token.json", "MfaSignInFunction", 401),
    // The owner resets the invited user's (absent) second factor.
    ("reset-mfa.json", "ResetMfaFunction", 204),
    ("record-consent.json", "RecordConsentFunction", 201),
    ("list-consents.json", "ListConsentsFunction", 200),
    ("list-sessions.json", "ListSessionsFunction", 200),
    ("revoke-session.json", "RevokeSessionFunction", 204),
    ("change-password-weak.json", "ChangePasswordFunction", 400),
    ("change-password.json", "ChangePasswordFunction", 200),
    ("logout-all.json", "LogoutAllFunction", 204),
    ("create-client.json", "CreateClientFunction", 201),
    ("create-client-owner-role.json", "CreateClientFunction", 400),
    ("rotate-client-secret.json", "RotateClientSecretFunction", 200),
    ("oauth-token.json", "OAuthTokenFunction", 200),
    ("oauth-token-unsupported-grant.json", "OAuthTokenFunction", 400),
    ("revoke-client.json", "RevokeClientFunction", 204),
    ("create-account-overdraft.json", "CreateAccountFunction", 201),
    // An overdraft needs the owner or admin role.
    ("create-account-overdraft-by-member.json", "CreateAccountFunction", 403),
    // The owner freezes the account of get-account.json.
    ("update-account.json", "UpdateAccountFunction", 200),
    // Chat: ada's group with bea (`{{PEER_USER_ID}}`), cy (`{{THIRD_USER_ID}}`) added and removed.
    ("create-conversation.json", "CreateConversationFunction", 201),
    ("get-conversation.json", "GetConversationFunction", 200),
    ("get-presence.json", "GetPresenceFunction", 200),
    ("post-message.json", "PostMessageFunction", 201),
    ("list-messages.json", "ListMessagesFunction", 200),
    ("edit-message.json", "EditMessageFunction", 204),
    ("mark-read.json", "MarkReadFunction", 200),
    // ada uploads 68 bytes to the presigned URL between the request and the completion.
    ("request-upload.json", "RequestUploadFunction", 201),
    ("complete-upload.json", "CompleteUploadFunction", 200),
    ("get-media.json", "GetMediaFunction", 200),
    ("delete-media.json", "DeleteMediaFunction", 204),
    ("list-conversations.json", "ListConversationsFunction", 200),
    // Searches: the conversation by its title; nothing indexed here (no indexer runs).
    ("search-conversations.json", "SearchConversationsFunction", 200),
    ("search-messages.json", "SearchMessagesFunction", 200),
    ("search-users.json", "SearchUsersFunction", 200),
    ("add-participants.json", "AddParticipantsFunction", 200),
    ("remove-participant.json", "RemoveParticipantFunction", 204),
    ("delete-message.json", "DeleteMessageFunction", 204),
    ("leave-conversation.json", "LeaveConversationFunction", 204),
    // The owner exports, then erases, the invited user of register-invited.json.
    ("export-user.json", "ExportUserFunction", 200),
    ("erase-user.json", "EraseUserFunction", 204),
];

/// Job samples, run by their own tests below (or in the job's test file).
const JOB_EVENTS: &[&str] = &[
    "verify.json",
    // Run in tests/ledger.rs.
    "expire-holds.json",
    // Run in tests/retention.rs.
    "retention.json",
    "outbox-drain.json",
    "outbox-drain-sweep.json",
    "audit-writer.json",
    // Run in tests/search.rs.
    "index-search.json",
    // Run in tests/backup.rs, tests/migrate.rs and tests/access.rs.
    "backup.json",
    "migrate.json",
    "migrate-status.json",
    "tenants-create.json",
    "tenants-get.json",
    "tenants-list.json",
    "tenants-update.json",
    "tenants-suspend.json",
    "tenants-reactivate.json",
    "tenants-invite.json",
    // Run in tests/keys.rs.
    "signing-keys-status.json",
    // Run in tests/mfa.rs.
    "tenants-require-mfa.json",
    // Run in tests/delivery.rs.
    "deliver.json",
    // Run in tests/websocket.rs.
    "ws-connect.json",
    "ws-send.json",
    "ws-disconnect.json",
    // Run in tests/migrate.rs, on a migrated legacy overdraft account.
    "tenants-set-overdraft-limit.json",
];

fn claims_of(access_token: &str) -> serde_json::Value {
    use base64::Engine;
    let claims = access_token.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn fill(template: &str, values: &HashMap<&str, String>) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| text.replace(&format!("{{{{{name}}}}}"), value))
}

async fn run_api(
    api: &Api<'_>,
    file: &str,
    function: &str,
    values: &HashMap<&str, String>,
) -> Response<Body> {
    let event = fill(&event_file(file), values);
    let request = lambda_http::request::from_str(&event).unwrap_or_else(|e| panic!("events/{file}: {e}"));
    dispatch(&api.app(function), function, request).await
}

#[test]
fn every_event_file_is_listed() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = API_EVENTS
        .iter()
        .map(|(f, _, _)| f.to_string())
        .chain(JOB_EVENTS.iter().map(|f| f.to_string()))
        .collect();
    listed.sort();
    assert_eq!(files, listed, "every events/*.json has an expected outcome here, and only those");
}

#[tokio::test]
async fn every_api_sample_gives_its_documented_status() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let mut values: HashMap<&str, String> = HashMap::new();
    // The operator's step: the samples' tenant, open to signup, and its owner.
    let owner_invitation = open_tenant(&stack, "acme").await.expect("a new tenant");
    for (file, function, status) in API_EVENTS {
        // Fresh live values for the samples that need them.
        match *file {
            "verify-audit.json" => {
                let auditor = api.invited("acme", "auditor@example.com", caas::auth::Role::Auditor).await;
                values.insert("AUDITOR_ACCESS_TOKEN", auditor);
            }
            "me.json" => {
                let credentials = json!({
                    "tenant_id": "acme",
                    "email": owner_invitation.email,
                    "password": caas_tests::api::PASSWORD,
                });
                let mut registration = credentials.clone();
                registration["invitation"] = owner_invitation.token.clone().into();
                let request = api_event("POST", "/v1/users", &[], &[], &[], Some(&registration.to_string()));
                assert_eq!(api.call("RegisterFunction", request).await.status(), 201);
                let request =
                    api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&credentials.to_string()));
                let (status, tokens) = parts(&api.call("LoginFunction", request).await);
                assert_eq!(status, 200, "{tokens}");
                values.insert("OWNER_ACCESS_TOKEN", tokens["access_token"].as_str().unwrap().to_owned());
            }
            "create-account.json" => {
                let token = api.token("acme", "ada@example.com").await;
                values.insert("ACCESS_TOKEN", token);
            }
            "get-account.json" => {
                let account = api.account(&values["ACCESS_TOKEN"], "USD", false).await;
                values.insert("ACCOUNT_ID", account);
            }
            "create-payment.json" => {
                let token = values["ACCESS_TOKEN"].clone();
                let (payer, payee) =
                    (api.account(&token, "USD", false).await, api.account(&token, "USD", false).await);
                api.fund(&token, &payer, 100_000, "USD").await;
                values.insert("PAYER_ACCOUNT_ID", payer);
                values.insert("PAYEE_ACCOUNT_ID", payee);
            }
            "capture-payment.json" | "void-payment.json" => {
                let token = &values["ACCESS_TOKEN"];
                let response = api
                    .authorize(token, &values["PAYER_ACCOUNT_ID"], &values["PAYEE_ACCOUNT_ID"], 1_250, "USD")
                    .await;
                values.insert("PAYMENT_ID", parts(&response).1["payment_id"].as_str().unwrap().to_owned());
            }
            "revoke-session.json" => {
                // Another session of the samples' user, to end.
                let token = api.token("acme", "ada@example.com").await;
                values.insert("SESSION_ID", claims_of(&token)["sid"].as_str().unwrap().to_owned());
            }
            "change-password-weak.json" => {
                let token = api.token("acme", "pat@example.com").await;
                values.insert("PASSWORD_USER_ACCESS_TOKEN", token);
            }
            "create-conversation.json" => {
                let bea = api.token("acme", "bea@example.com").await;
                let cy = api.token("acme", "cy@example.com").await;
                values.insert("PEER_USER_ID", claims_of(&bea)["sub"].as_str().unwrap().to_owned());
                values.insert("THIRD_USER_ID", claims_of(&cy)["sub"].as_str().unwrap().to_owned());
            }
            "complete-upload.json" => {
                let upload: serde_json::Value = serde_json::from_str(&values["UPLOAD"]).unwrap();
                assert_eq!(send_presigned(&upload, vec![b'x'; 68]).await, 200, "the sample's upload");
            }
            "refund-payment.json" => {
                let token = &values["ACCESS_TOKEN"];
                let response = api
                    .authorize(token, &values["PAYER_ACCOUNT_ID"], &values["PAYEE_ACCOUNT_ID"], 1_250, "USD")
                    .await;
                let id = parts(&response).1["payment_id"].as_str().unwrap().to_owned();
                assert_eq!(api.capture(token, &id, None).await.status(), 200);
                values.insert("PAYMENT_ID", id);
            }
            _ => {}
        }
        let response = run_api(&api, file, function, &values).await;
        let (actual, body) = parts(&response);
        assert_eq!(actual, *status, "events/{file}: {body}");
        if actual >= 400 {
            let oauth = *function == "OAuthTokenFunction";
            let content_type = if oauth { "application/json" } else { "application/problem+json" };
            assert_eq!(header(&response, "content-type"), Some(content_type), "events/{file}");
        }
        // Live values the next samples need from this one's answer.
        match *file {
            "create-invitation.json" => {
                values.insert("INVITATION_TOKEN", body["token"].as_str().unwrap().to_owned());
            }
            "register-invited.json" => {
                values.insert("USER_ID", body["user_id"].as_str().unwrap().to_owned());
            }
            "create-client.json" => {
                values.insert("CLIENT_ID", body["client_id"].as_str().unwrap().to_owned());
                values.insert("CLIENT_SECRET", body["client_secret"].as_str().unwrap().to_owned());
            }
            "rotate-client-secret.json" => {
                values.insert("CLIENT_SECRET", body["client_secret"].as_str().unwrap().to_owned());
            }
            "create-conversation.json" => {
                values.insert("CONVERSATION_ID", body["conversation_id"].as_str().unwrap().to_owned());
            }
            "post-message.json" => assert_eq!(body["seq"], 1),
            "request-upload.json" => {
                values.insert("MEDIA_ID", body["media_id"].as_str().unwrap().to_owned());
                values.insert("UPLOAD", body["upload"].to_string());
            }
            "complete-upload.json" => assert_eq!(body["status"], "ready"),
            "get-media.json" => assert!(body["download"]["url"].is_string(), "{body}"),
            "list-messages.json" => assert_eq!(body["messages"][0]["body"], "Hello, launch team"),
            "list-conversations.json" => assert_eq!(body["conversations"][0]["title"], "Launch"),
            "search-conversations.json" => assert_eq!(body["conversations"][0]["title"], "Launch"),
            "oauth-token.json" => assert_eq!(body["scope"], "member"),
            "update-account.json" => assert_eq!(body["status"], "frozen"),
            "oauth-token-unsupported-grant.json" => assert_eq!(body["error"], "unsupported_grant_type"),
            _ => {}
        }
    }

    // The refresh and logout samples with a live token substituted.
    let (_, tokens) = parts(&run_api(&api, "login.json", "LoginFunction", &values).await);
    let live = tokens["refresh_token"].as_str().unwrap();
    for (file, function, status) in
        [("refresh.json", "RefreshFunction", 200), ("logout.json", "LogoutFunction", 204)]
    {
        let event =
            event_file(file).replace("rt1.acme.REPLACE_WITH_A_REFRESH_TOKEN_FROM_LOGIN_000000000", live);
        let response =
            dispatch(&api.app(function), function, lambda_http::request::from_str(&event).unwrap()).await;
        assert_eq!(response.status().as_u16(), status, "events/{file} with a live token");
    }
}

#[tokio::test]
async fn the_verify_sample_reports_a_consistent_ledger() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let token = api.token("acme", "ada@example.com").await;
    let wallet = api.account(&token, "USD", false).await;
    api.fund(&token, &wallet, 500, "USD").await;
    let payload: serde_json::Value = serde_json::from_str(&event_file("verify.json")).unwrap();
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    let report = verify::handler(&stack.app("VerifyFunction"), event).await.expect("verify runs");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.ledger.accounts_checked, 2);
    let malformed =
        lambda_runtime::LambdaEvent::new(json!({"tenant_id": 7}), lambda_runtime::Context::default());
    assert!(verify::handler(&stack.app("VerifyFunction"), malformed).await.is_err(), "a clear job error");
}

/// The outbox-drain samples (a stream batch, the sweep schedule's input) and
/// the audit-writer sample (the same event as an SQS message), parsed the way
/// the runtime parses them and run through the functions' entry points.
#[tokio::test]
async fn the_outbox_and_audit_samples_run_through_their_handlers() {
    use caas::outbox::drain::{Invocation, Output};
    use caas_tests::triggers::{QueueTrigger, lambda_event};
    let stack = TestStack::new().await;
    let drain = stack.app("OutboxDrainFunction");

    let stream: Invocation =
        serde_json::from_str(&event_file("outbox-drain.json")).expect("outbox-drain.json");
    let Output::Stream(response) = outbox_drain::dispatch(&drain, lambda_event(stream)).await.unwrap() else {
        panic!("outbox-drain.json is a stream batch")
    };
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let messages = QueueTrigger::new(&stack, "EventsQueue").drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].attributes["MessageGroupId"], "acme");
    assert_eq!(messages[0].attributes["MessageDeduplicationId"], "019ab8f2-5c00-7000-8000-000000000001");

    let sweep: Invocation =
        serde_json::from_str(&event_file("outbox-drain-sweep.json")).expect("outbox-drain-sweep.json");
    let Output::Sweep(report) = outbox_drain::dispatch(&drain, lambda_event(sweep)).await.unwrap() else {
        panic!("outbox-drain-sweep.json is the sweep input")
    };
    assert_eq!((report.found, report.failed), (0, 0));

    let writer = stack.app("AuditWriterFunction");
    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&event_file("audit-writer.json")).expect("audit-writer.json");
    let response = audit_writer::handler(&writer, lambda_event(sqs)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let tenant = caas::tenant::TenantId::parse("acme").unwrap();
    let report = caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant).await.unwrap();
    assert!(report.ok);
    assert_eq!(report.entries_checked, 1);
}
