// The handlers' futures nest the SDK's calls deeply enough to pass the
// compiler's default query depth when their layout is computed.
#![recursion_limit = "256"]

//! Personal data sealed per person against the emulator: registration
//! stores the email only sealed with the user's own key and keyed by its
//! hash, login finds it without opening anything, administrators see it
//! opened; and the `users-seal-email` / `users-drop-plaintext-email`
//! migration over users stored before, with logins running throughout.

use aws_sdk_dynamodb::types::AttributeValue;
use caas::auth::Role;
use caas::migrate::Command;
use caas::store::Item;
use caas::store::members::MemberRecord;
use caas::store::users::{self, UserRecord, UserStatus};
use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::*;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const TENANT: &str = "acme";

/// Every item of the tenant, as stored.
async fn tenant_items(stack: &TestStack) -> Vec<Item> {
    scan_raw_items(stack, "begins_with(pk, :t)", &[(":t", &format!("T#{TENANT}#"))]).await
}

/// Whether any attribute of any item holds `needle` (keys included).
fn anywhere(items: &[Item], needle: &str) -> bool {
    items.iter().any(|item| format!("{item:?}").contains(needle))
}

fn kind(item: &Item) -> &str {
    match item.get("kind") {
        Some(AttributeValue::S(kind)) => kind,
        _ => "",
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

async fn list_users(api: &Api<'_>, token: &str) -> Value {
    let bearer = format!("Bearer {token}");
    let response = api
        .call(
            "ListUsersFunction",
            api_event("GET", "/v1/users", &[], &[], &[("authorization", &bearer)], None),
        )
        .await;
    let (status, page) = parts(&response);
    assert_eq!(status, 200, "{page}");
    page
}

fn emails_of(page: &Value) -> Vec<String> {
    let mut emails: Vec<String> =
        page["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect();
    emails.sort();
    emails
}

#[tokio::test]
async fn the_email_is_stored_only_sealed_and_login_finds_it_by_its_hash() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let owner = api.invited(TENANT, "boss@example.com", Role::Owner).await;
    api.token(TENANT, "ada@example.com").await;

    let items = tenant_items(&stack).await;
    for email in ["ada@example.com", "boss@example.com"] {
        // Users, directory entries, outbox events: nowhere in plaintext
        // (the operator's invitation of the owner keeps the owner's own).
        let without_invitations: Vec<Item> =
            items.iter().filter(|i| kind(i) != "invitation").cloned().collect();
        assert!(!anywhere(&without_invitations, email), "{email} is stored in plaintext");
    }
    let users: Vec<&Item> = items.iter().filter(|i| kind(i) == "user").collect();
    assert_eq!(users.len(), 2);
    for user in &users {
        let pk = text(user, "pk").unwrap();
        let name = pk.strip_prefix(&format!("T#{TENANT}#USER#")).unwrap();
        assert!(caas::privacy::lookup::is_lookup(name), "keyed by the lookup hash: {pk}");
        assert_eq!(text(user, "email_lookup"), Some(name));
        assert!(text(user, "email_sealed").is_some_and(|s| s.starts_with("v1.")));
        assert!(user.get("email").is_none());
        let user_id = text(user, "user_id").unwrap();
        let key = items.iter().find(|i| kind(i) == "user_key" && text(i, "user_id") == Some(user_id));
        assert!(key.is_some(), "each user has their own key item");
    }

    // A warm login: one read (both keys at once), no KMS call but the token's signature.
    api.login(TENANT, "ada@example.com").await;
    stack.round_trips.reset();
    api.login(TENANT, "ada@example.com").await;
    assert_eq!(stack.round_trips.operations("DynamoDB")[0], "BatchGetItem");
    assert_eq!(stack.round_trips.operations("KMS"), ["Sign"]);

    // Shown to administrators, opened.
    assert_eq!(emails_of(&list_users(&api, &owner).await), ["ada@example.com", "boss@example.com"]);

    // The same email again is the same user (the hash is the key).
    let body = json!({ "tenant_id": TENANT, "email": " ADA@example.com", "password": PASSWORD }).to_string();
    let again =
        api.call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body))).await;
    assert_eq!(again.status(), 409);
}

// ------------------------------------------------------------------ migration

const USERS: usize = 40;

fn email(i: usize) -> String {
    format!("legacy{i:03}@example.com")
}

/// Stores `count` users in the layout from before personal data was sealed:
/// keyed by the plaintext email, which the user item and the directory
/// entry carry.
async fn seed_legacy_users(stack: &TestStack, count: usize) -> Vec<String> {
    let app = stack.app("LoginFunction");
    let hash = caas::auth::password::hash(app.config.argon2, PASSWORD).unwrap();
    let table = stack.table();
    let tenant = caas::tenant::TenantId::parse(TENANT).unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let user = UserRecord {
            tenant_id: TENANT.into(),
            user_id: caas::ids::new_id(),
            email: Some(email(i)),
            email_lookup: None,
            email_sealed: None,
            key_name: String::new(),
            password_hash: hash.clone(),
            created_at: "2024-01-02T03:04:05Z".into(),
            created_at_ms: None,
            last_login_at: None,
            failed_logins: 0,
            failed_window_started_at: None,
            locked_until: None,
            role: Role::Member,
            status: UserStatus::Active,
            session_epoch: 0,
            devices: None,
            mfa: None,
        };
        let member = MemberRecord {
            tenant_id: TENANT.into(),
            user_id: user.user_id.clone(),
            email: Some(email(i)),
            email_lookup: None,
            email_sealed: None,
            display_name_sealed: None,
            role: Role::Member,
            status: UserStatus::Active,
            session_epoch: 0,
            created_at: user.created_at.clone(),
            updated_at: None,
        };
        let event = caas::outbox::OutboxEvent::new(
            &tenant,
            "user",
            &user.user_id,
            "user.imported",
            time::OffsetDateTime::now_utc(),
            "seed",
            json!({ "user_id": user.user_id }),
        );
        caas::store::tx::Tx::new(&table, &event)
            .unwrap()
            .push(users::insert_legacy(&table, &user).unwrap())
            .push(caas::store::members::insert(&table, &member).unwrap())
            .commit(&stack.clients.dynamodb)
            .await
            .unwrap();
        ids.push(user.user_id);
    }
    ids
}

async fn migrate_command(app: &caas::App, command: Command) -> Value {
    match migrate::handler(app, invocation(migrate::Input::Command(command))).await {
        Ok(migrate::Output::Report(report)) => report,
        other => panic!("a command answered {other:?}"),
    }
}

/// The jobs queue's trigger until the queue is empty (one message per invocation).
async fn drive(stack: &TestStack, app: &caas::App) {
    let queue = triggers::QueueTrigger::new(stack, "JobsQueue");
    loop {
        let batch = queue.receive(10).await;
        if batch.records.is_empty() {
            return;
        }
        let queue = &queue;
        let jobs = batch.records.iter().map(|message| async move {
            let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
            event.records = vec![message.clone()];
            let response = match migrate::handler(app, invocation(migrate::Input::Jobs(event.clone()))).await
            {
                Ok(migrate::Output::Batch(response)) => response,
                other => panic!("a job answered {other:?}"),
            };
            assert!(response.batch_item_failures.is_empty(), "a segment job failed");
            queue.settle(&event, &response).await;
        });
        futures::future::join_all(jobs).await;
    }
}

/// Runs `command` to its end while every user logs in over and over; every
/// login must succeed. Returns how many logins ran while the run was going.
async fn run_with_logins(
    stack: &TestStack,
    migrate_app: &caas::App,
    login_app: &caas::App,
    command: Command,
) -> usize {
    let done = AtomicBool::new(false);
    let logins = AtomicUsize::new(0);
    let migration = async {
        let started = migrate_command(migrate_app, command).await;
        assert!(started["run_id"].is_string(), "{started}");
        drive(stack, migrate_app).await;
        done.store(true, Ordering::SeqCst);
    };
    let sign_ins = futures::future::join_all((0..4).map(|worker| {
        let (done, logins) = (&done, &logins);
        async move {
            let mut i = worker;
            // At least one round over every user, and on until the run ends.
            while !done.load(Ordering::SeqCst) || i < USERS {
                let body = json!({ "tenant_id": TENANT, "email": email(i % USERS), "password": PASSWORD })
                    .to_string();
                let request = api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body));
                let response = login::handler(login_app, request).await.unwrap();
                let (status, answer) = parts(&response);
                assert_eq!(status, 200, "login of {} during the migration: {answer}", email(i % USERS));
                logins.fetch_add(1, Ordering::SeqCst);
                i += 4;
            }
        }
    }));
    tokio::join!(migration, sign_ins);
    logins.load(Ordering::SeqCst)
}

#[tokio::test]
async fn the_email_migration_seals_legacy_users_while_they_log_in_and_rolls_back() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    // Signed in first: the logins below spend the source address's limit.
    let owner = api.invited(TENANT, "boss@example.com", Role::Owner).await;
    let ids = seed_legacy_users(&stack, USERS).await;
    let unlimited = [("RATE_LIMIT_LOGIN_IP", "1000000/300")];
    let login_app = stack.app_with("LoginFunction", &unlimited);
    let migrate_app = stack.app_with("MigrateFunction", &[("MIGRATE_PAGE_SIZE", "10")]);

    // Legacy users log in as they are (found by the email key).
    let body = json!({ "tenant_id": TENANT, "email": email(0), "password": PASSWORD }).to_string();
    let response =
        login::handler(&login_app, api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body))).await;
    assert_eq!(response.unwrap().status(), 200);
    let legacy = tenant_items(&stack).await;
    assert!(anywhere(&legacy, &email(3)), "the seed is in plaintext");

    // Up to the expand + backfill: both the plaintext and the sealed value.
    run_with_logins(
        &stack,
        &migrate_app,
        &login_app,
        Command::Up { to: Some(7), segments: Some(3), dry_run: false },
    )
    .await;
    let expanded = tenant_items(&stack).await;
    let legacy_person = |i: &&Item| {
        matches!(kind(i), "user" | "member") && ids.iter().any(|id| text(i, "user_id") == Some(id))
    };
    for item in expanded.iter().filter(legacy_person) {
        assert!(text(item, "email").is_some(), "expand keeps the plaintext");
        assert!(text(item, "email_lookup").is_some_and(caas::privacy::lookup::is_lookup));
        assert!(text(item, "email_sealed").is_some());
    }
    assert_eq!(expanded.iter().filter(|i| kind(i) == "user_key").count(), USERS + 1, "one key per user");

    // The contract, with logins throughout.
    let during = run_with_logins(
        &stack,
        &migrate_app,
        &login_app,
        Command::Up { to: None, segments: Some(3), dry_run: false },
    )
    .await;
    assert!(during >= USERS);
    let status = migrate_command(&migrate_app, Command::Status).await;
    assert_eq!(status["current_version"], 8, "{status}");
    let contracted = tenant_items(&stack).await;
    let people: Vec<Item> = contracted.iter().filter(legacy_person).cloned().collect();
    assert_eq!(people.len(), 2 * USERS);
    for i in 0..USERS {
        assert!(!anywhere(&people, &email(i)), "{} left in plaintext", email(i));
    }
    for user in people.iter().filter(|i| kind(i) == "user") {
        let name = text(user, "pk").unwrap().strip_prefix(&format!("T#{TENANT}#USER#")).unwrap();
        assert!(caas::privacy::lookup::is_lookup(name), "moved to its lookup key");
        assert!(ids.iter().any(|id| text(user, "user_id") == Some(id)));
    }

    // Administrators still see every email (opened with each user's key).
    let mut expected: Vec<String> = (0..USERS).map(email).collect();
    expected.push("boss@example.com".into());
    expected.sort();
    assert_eq!(emails_of(&list_users(&api, &owner).await), expected);

    // Rolling back: down to the release before, with logins throughout;
    // the plaintext is back where that release reads it.
    run_with_logins(
        &stack,
        &migrate_app,
        &login_app,
        Command::Down { to: 6, segments: Some(3), dry_run: false },
    )
    .await;
    let restored = tenant_items(&stack).await;
    for i in 0..USERS {
        let pk = format!("T#{TENANT}#USER#{}", email(i));
        let user = restored.iter().find(|item| text(item, "pk") == Some(&pk)).expect("back at its email key");
        assert_eq!(text(user, "email"), Some(email(i).as_str()));
        assert!(user.get("email_sealed").is_none());
    }
}

// ------------------------------------------------------------------ erasure

async fn erase(api: &Api<'_>, token: &str, user_id: &str, body: Option<&str>) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let response = api
        .call(
            "EraseUserFunction",
            api_event("DELETE", "/v1/users/{id}", &[("id", user_id)], &[], &headers, body),
        )
        .await;
    let (status, value) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, value)
}

async fn export(api: &Api<'_>, token: &str, user_id: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let response = api
        .call(
            "ExportUserFunction",
            api_event(
                "GET",
                "/v1/users/{id}/export",
                &[("id", user_id)],
                &[],
                &[("authorization", &bearer)],
                None,
            ),
        )
        .await;
    let (status, value) = parts(&response);
    if status >= 400 {
        assert_problem(&response, status);
    }
    (status, value)
}

fn invoke_backup(payload: Value) -> LambdaEvent<backup::Input> {
    invocation(serde_json::from_value(payload).expect("a backup command"))
}

#[tokio::test]
async fn an_erased_user_is_gone_the_books_and_the_chain_stay_and_every_restore_erases_them_again() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let treasurer = api.treasurer(TENANT).await;
    let ada = api.token(TENANT, "ada@example.com").await;
    let ada_id = caas_tests::api::claims(&ada)["sub"].as_str().unwrap().to_owned();
    let bob = api.token(TENANT, "bob@example.com").await;
    let bob_id = caas_tests::api::claims(&bob)["sub"].as_str().unwrap().to_owned();
    // A refresh token of ada's, to show her sessions end.
    let body = json!({ "tenant_id": TENANT, "email": "ada@example.com", "password": PASSWORD }).to_string();
    let login =
        api.call("LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body))).await;
    let refresh_token = parts(&login).1["refresh_token"].as_str().unwrap().to_owned();

    // Ada consents to something, and pays bob.
    let bearer = format!("Bearer {ada}");
    let consent = r#"{"purpose": "marketing_email", "version": "v1", "granted": true}"#;
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let recorded = api
        .call("RecordConsentFunction", api_event("POST", "/v1/consents", &[], &[], &headers, Some(consent)))
        .await;
    assert_eq!(recorded.status(), 201);
    let payer = api.account(&ada, "EUR", false).await;
    // Bob's is a hot account: its item holds shard 0 of 32, the credit lands on one of them.
    let key = uuid::Uuid::new_v4().to_string();
    let hot = json!({ "currency": "EUR", "name": "till", "shards": 32 });
    let created = api.post("CreateAccountFunction", "/v1/accounts", None, &bob, Some(&key), &hot).await;
    let payee = parts(&created).1["account_id"].as_str().unwrap().to_owned();
    api.fund(&treasurer, &payer, 10_000, "EUR").await;
    let response = api.authorize(&ada, &payer, &payee, 2_500, "EUR").await;
    let payment = parts(&response).1["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(api.capture(&ada, &payment, None).await.status(), 200);
    let stream = triggers::StreamTrigger::new(&stack, "OutboxDrainFunction");
    let queue = triggers::QueueTrigger::new(&stack, "EventsQueue");
    triggers::audit_pipeline(&stack, &stream, &queue).await;

    // Her export: everything held about her, for her or an administrator.
    let (status, data) = export(&api, &ada, &ada_id).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["profile"]["email"], "ada@example.com");
    assert_eq!(data["profile"]["user_id"], ada_id.as_str());
    assert!(data["mfa"].is_null());
    assert!(!data["sessions"].as_array().unwrap().is_empty(), "{data}");
    assert_eq!(data["consents"][0]["purpose"], "marketing_email");
    let accounts = data["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "the account she owns, not bob's");
    assert_eq!(accounts[0]["account"]["account_id"], payer.as_str());
    assert!(!accounts[0]["entries"].as_array().unwrap().is_empty());
    assert!(
        data["payments"].as_array().unwrap().iter().any(|p| p["payment"]["payment_id"] == payment.as_str())
    );
    assert!(data["audit_entries"].as_array().unwrap().iter().any(|e| e["type"] == "user.registered"));
    assert!(!data.to_string().contains("password_hash") && !data.to_string().contains("wrapped_key"));
    assert_eq!(export(&api, &treasurer, &ada_id).await.0, 200, "an owner may");
    let (status, bobs) = export(&api, &bob, &bob_id).await;
    assert_eq!(status, 200, "{bobs}");
    let till = &bobs["accounts"][0]["account"];
    assert_eq!(
        (&till["account_id"], &till["available"]),
        (&json!(payee), &json!(2_500)),
        "summed over shards"
    );
    assert_eq!(export(&api, &bob, &ada_id).await.0, 403, "another member may not");

    // A backup from before the erasure: it holds ada's key.
    let backup_app = stack.app("BackupFunction");
    backup::handler(&backup_app, invoke_backup(json!({"action": "run"}))).await.expect("backup");

    // Who may erase whom.
    assert_eq!(erase(&api, &bob, &ada_id, None).await.0, 403, "a member erases no one else");
    let (status, problem) = erase(&api, &ada, &ada_id, None).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("password")),
        "oneself: the password is needed"
    );
    let wrong = r#"{"password": "not the password at all"}"#;
    assert_eq!(erase(&api, &ada, &ada_id, Some(wrong)).await.0, 403);
    let right = json!({ "password": PASSWORD }).to_string();
    stack.round_trips.reset();
    assert_eq!(erase(&api, &ada, &ada_id, Some(&right)).await.0, 204);
    assert_eq!(
        stack.round_trips.operations("DynamoDB").last().map(String::as_str),
        Some("TransactWriteItems")
    );
    // An owner erases bob, no password.
    assert_eq!(erase(&api, &treasurer, &bob_id, None).await.0, 204);
    assert_eq!(erase(&api, &treasurer, &bob_id, None).await.0, 404, "erased once");

    // Gone: no login (as for an unknown email), no refresh, no export, not listed, nothing left to open.
    assert_eq!(export(&api, &treasurer, &ada_id).await.0, 404);
    let login =
        api.call("LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body))).await;
    assert_eq!(login.status(), 401);
    let refresh = json!({ "refresh_token": refresh_token }).to_string();
    let refreshed = api
        .call("RefreshFunction", api_event("POST", "/v1/auth/refresh", &[], &[], &[], Some(&refresh)))
        .await;
    assert_eq!(refreshed.status(), 401);
    let listed = list_users(&api, &treasurer).await;
    assert!(listed["users"].as_array().unwrap().iter().all(|u| u["user_id"] != ada_id.as_str()));
    let items = tenant_items(&stack).await;
    for id in [&ada_id, &bob_id] {
        assert!(
            !items.iter().any(|i| matches!(kind(i), "user" | "member" | "user_key" | "session")
                && text(i, "user_id") == Some(id)),
            "the person's user item, entry, key and sessions are deleted"
        );
    }
    // The erasure list: ids and dates only.
    let list =
        caas::store::erasures::all(&stack.clients.dynamodb, backup_app.config.erasures_table().unwrap())
            .await
            .unwrap();
    let erased: Vec<&str> = list.iter().map(|e| e.user_id.as_str()).collect();
    assert!(erased.contains(&ada_id.as_str()) && erased.contains(&bob_id.as_str()));

    // The books stay, under the pseudonymous ids, and still balance.
    let ledger = caas::ledger::verify::verify_ledger(&stack.clients.dynamodb, &stack.table(), None, None)
        .await
        .unwrap();
    assert!(ledger.ok, "{ledger:?}");
    let balance = api.balance(&treasurer, &payee).await;
    assert_eq!(balance["posted"], 2_500, "{balance}");
    // The chain verifies with the erasure on it, and names no email.
    triggers::audit_pipeline(&stack, &stream, &queue).await;
    let events = stored_events(&stack, TENANT).await;
    let erasure = events.iter().find(|e| e.event_type == "user.erased").expect("user.erased");
    assert!(!format!("{erasure:?}").contains("@example.com"));
    let bearer = format!("Bearer {treasurer}");
    let verified = api
        .call(
            "VerifyAuditFunction",
            api_event("GET", "/v1/audit/verify", &[], &[], &[("authorization", &bearer)], None),
        )
        .await;
    let (status, report) = parts(&verified);
    assert_eq!((status, &report["ok"]), (200, &json!(true)), "{report}");

    // The drill restores the backup from before the erasure and erases again
    // before anything is checked: no key left to open ada's data there.
    let report = backup::handler(&backup_app, invoke_backup(json!({"action": "drill"})))
        .await
        .expect("the drill passes");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["erasures"]["erasures"], 2, "{report}");
    assert_eq!(report["erasures"]["reapplied"], 2, "both were in the backup");
    assert_eq!(report["erasures"]["undecryptable"], 2);
    assert_eq!(report_check(&report, "erasures")["ok"], true);
    assert_eq!(report_check(&report, "ledger")["ok"], true);
    assert_eq!(report_check(&report, "audit_chains")["ok"], true);
}
