//! The migrate function against the emulator: commands by direct invoke,
//! segment jobs delivered from the jobs queue the way Lambda's SQS trigger
//! would (one message per invocation, in parallel, failures released for
//! redelivery, successes deleted).

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use caas::migrate::plan::{Direction, plan_item};
use caas::migrate::{Command, definitions};
use caas::store::Item;
use caas_tests::triggers::QueueTrigger;
use caas_tests::*;
use lambda_runtime::LambdaEvent;
use migrate::{Input, Output};
use serde_json::Value;
use std::collections::BTreeMap;

const TENANT: &str = "acme";
const FUNCTION: &str = "MigrateFunction";

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn email(i: usize) -> String {
    format!("user{i:06}@example.com")
}

/// A user item in the v1 shape the auth code writes; every third has a
/// legacy bcrypt hash, some creation times carry milliseconds.
fn user_item(i: usize) -> Item {
    let ms = 1_700_000_000_000i64 + (i as i64) * 60_000 + if i.is_multiple_of(7) { 123 } else { 0 };
    let hash = if i.is_multiple_of(3) {
        "$2b$10$abcdefghijklmnopqrstuu5i2bYwbLhP7T2Ux3tY0d5oBm6J3Yv2".to_owned()
    } else {
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned()
    };
    let user_id = format!("0190aaaa-0000-7000-8000-{i:012}");
    Item::from([
        ("pk".into(), s(&format!("T#{TENANT}#USER#{}", email(i)))),
        ("sk".into(), s("USER")),
        ("kind".into(), s("user")),
        ("gsi1pk".into(), s(&format!("T#{TENANT}#USERID#{user_id}"))),
        ("gsi1sk".into(), s("USER")),
        ("schema_version".into(), AttributeValue::N("1".into())),
        ("tenant_id".into(), s(TENANT)),
        ("user_id".into(), s(&user_id)),
        ("email".into(), s(&email(i))),
        ("password_hash".into(), s(&hash)),
        ("created_at".into(), s(&definitions::format_ms(ms).unwrap())),
        ("failed_logins".into(), AttributeValue::N("0".into())),
    ])
}

/// An item of a kind no migration touches.
fn other_item(i: usize) -> Item {
    Item::from([
        ("pk".into(), s(&format!("T#{TENANT}#SESSION#{i:06}"))),
        ("sk".into(), s("SESSION")),
        ("kind".into(), s("session")),
        ("schema_version".into(), AttributeValue::N("1".into())),
        ("created_at".into(), s("not a time, and no migration reads it")),
    ])
}

async fn seed(stack: &TestStack, items: Vec<Item>) {
    let table = stack.table();
    let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    let writes = batches.into_iter().map(|batch| {
        let dynamodb = stack.clients.dynamodb.clone();
        let table = table.clone();
        async move {
            let mut pending: Vec<WriteRequest> = batch
                .into_iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            while !pending.is_empty() {
                let output =
                    dynamodb.batch_write_item().request_items(&table, pending).send().await.expect("seed");
                pending = output.unprocessed_items.and_then(|mut u| u.remove(&table)).unwrap_or_default();
            }
        }
    });
    futures::stream::iter(writes).buffer_unordered(8).collect::<Vec<_>>().await;
}

use futures::StreamExt;

/// Every item of the table except the migration bookkeeping, by key.
async fn snapshot(stack: &TestStack) -> BTreeMap<(String, String), Item> {
    let mut all = BTreeMap::new();
    let mut items = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.table())
        .consistent_read(true)
        .limit(1000)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = items.try_next().await.unwrap() {
        let key = |n: &str| match item.get(n) {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => panic!("key {n}"),
        };
        let (pk, sk) = (key("pk"), key("sk"));
        if !pk.starts_with("T#_system#") {
            all.insert((pk, sk), item);
        }
    }
    all
}

/// An invocation; `deadline` is the epoch-millisecond deadline (none: unknown).
fn invocation<T>(payload: T, deadline: Option<u64>) -> LambdaEvent<T> {
    let mut event = caas_tests::invocation(payload);
    if let Some(deadline) = deadline {
        event.context.deadline = deadline;
    }
    event
}

/// The deadline `ms` from now on the app's clock, which deadlines are measured against.
fn deadline_in(app: &caas::App, ms: u64) -> u64 {
    caas::clock::epoch_ms(app.now()) as u64 + ms
}

async fn command(app: &caas::App, command: Command) -> Result<Value, String> {
    match migrate::handler(app, invocation(Input::Command(command), None)).await {
        Ok(Output::Report(report)) => Ok(report),
        Ok(Output::Batch(_)) => panic!("a command answered with a batch response"),
        Err(error) => Err(error.to_string()),
    }
}

async fn status(app: &caas::App) -> Value {
    command(app, Command::Status).await.expect("status")
}

async fn up(app: &caas::App, to: Option<u32>, dry_run: bool) -> Value {
    command(app, Command::Up { to, segments: Some(4), dry_run }).await.expect("up starts")
}

/// Lambda's SQS trigger for the jobs queue: receives up to ten messages,
/// invokes the handler once per message concurrently, deletes what succeeded
/// and releases what failed, until the queue is empty. `deadline_ms` is the
/// time each invocation has left when it starts (on the app's clock, which
/// the test stack's manual clock holds still). Returns the number of
/// failed deliveries.
async fn drive(stack: &TestStack, app: &caas::App, deadline_ms: Option<u64>) -> usize {
    let queue = QueueTrigger::new(stack, "JobsQueue");
    let mut failed = 0;
    loop {
        let batch = queue.receive(10).await;
        if batch.records.is_empty() {
            return failed;
        }
        let queue = &queue;
        let invocations = batch.records.iter().map(|message| async move {
            let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
            event.records = vec![message.clone()];
            let deadline = deadline_ms.map(|ms| deadline_in(app, ms));
            let response = match migrate::handler(app, invocation(Input::Jobs(event.clone()), deadline)).await
            {
                Ok(Output::Batch(response)) => response,
                other => panic!("a job answered with {other:?}"),
            };
            queue.settle(&event, &response).await;
            response.batch_item_failures.len()
        });
        failed += futures::future::join_all(invocations).await.into_iter().sum::<usize>();
    }
}

fn expected_after_up(before: &BTreeMap<(String, String), Item>, to: u32) -> BTreeMap<(String, String), Item> {
    before
        .iter()
        .map(|(key, item)| {
            let after = match plan_item(definitions::all(), Direction::Up, to, item).unwrap() {
                Some(plan) => plan.after,
                None => item.clone(),
            };
            (key.clone(), after)
        })
        .collect()
}

fn last_history(status: &Value) -> &Value {
    status["history"].as_array().and_then(|h| h.last()).expect("a history entry")
}

#[tokio::test]
async fn up_then_down_over_ten_thousand_items_round_trips_with_history() {
    let stack = TestStack::new().await;
    let app = stack.app_with(FUNCTION, &[("MIGRATE_PAGE_SIZE", "500")]);
    const USERS: usize = 10_000;
    let mut items: Vec<Item> = (0..USERS).map(user_item).collect();
    items.extend((0..300).map(other_item));
    seed(&stack, items).await;
    let before = snapshot(&stack).await;
    assert_eq!(before.len(), USERS + 300);

    let initial = status(&app).await;
    assert_eq!(initial["current_version"], 1);
    assert_eq!(initial["latest_version"], 8);
    let pending: Vec<u64> =
        initial["pending"].as_array().unwrap().iter().map(|m| m["version"].as_u64().unwrap()).collect();
    assert_eq!(pending, [2, 3, 4, 5, 6, 7, 8]);

    // The user chain up to its contract (v5 and v6 have their own test).
    let started = up(&app, Some(4), false).await;
    assert_eq!((started["from_version"].as_u64(), started["to_version"].as_u64()), (Some(1), Some(4)));
    assert_eq!(started["segments"], 4);
    // Every invocation is about to time out: each segment hands over after
    // every page, so the run goes through many continuation messages.
    assert_eq!(drive(&stack, &app, Some(1)).await, 0);

    let after_up = status(&app).await;
    assert_eq!(after_up["current_version"], 4, "{after_up}");
    let pending: Vec<u64> =
        after_up["pending"].as_array().unwrap().iter().map(|m| m["version"].as_u64().unwrap()).collect();
    assert_eq!(pending, [5, 6, 7, 8]);
    assert!(after_up["running"].is_null(), "the lock is released");
    let entry = last_history(&after_up);
    assert_eq!(entry["status"], "succeeded");
    assert_eq!(entry["direction"], "up");
    assert_eq!(entry["items_scanned"], USERS as u64, "only user items are scanned, each once");
    assert_eq!(entry["items_changed"], USERS as u64);
    assert_eq!(entry["items_failed"], 0);
    assert_eq!(entry["changed_by_version"]["2"], USERS as u64);
    assert_eq!(entry["changed_by_version"]["4"], USERS as u64);
    let applied: Vec<u64> =
        after_up["applied"].as_array().unwrap().iter().map(|m| m["version"].as_u64().unwrap()).collect();
    assert_eq!(applied, [2, 3, 4]);

    let migrated = snapshot(&stack).await;
    assert_eq!(migrated, expected_after_up(&before, 4), "every item is exactly up(x)");
    let flagged =
        migrated.values().filter(|i| i.get("needs_rehash") == Some(&AttributeValue::Bool(true))).count();
    assert_eq!(flagged, USERS.div_ceil(3), "exactly the bcrypt users are flagged");
    // The user store still reads contracted (v4) users.
    let user =
        caas::store::users::find_by_key_name(&stack.clients.dynamodb, &stack.table(), TENANT, &email(7))
            .await
            .unwrap()
            .expect("user");
    assert_eq!(
        Some(&s(&user.created_at)),
        before[&(format!("T#{TENANT}#USER#{}", email(7)), "USER".into())].get("created_at")
    );

    command(&app, Command::Down { to: 1, segments: Some(4), dry_run: false }).await.expect("down starts");
    assert_eq!(drive(&stack, &app, None).await, 0);
    let after_down = status(&app).await;
    assert_eq!(after_down["current_version"], 1);
    let entry = last_history(&after_down);
    assert_eq!((entry["direction"].as_str(), entry["status"].as_str()), (Some("down"), Some("succeeded")));
    assert_eq!(entry["items_changed"], USERS as u64);
    assert_eq!(after_down["history"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot(&stack).await, before, "down(up(x)) == x for every item");
}

#[tokio::test]
async fn a_crashed_segment_resumes_from_its_checkpoint() {
    let stack = TestStack::new().await;
    let page = [("MIGRATE_PAGE_SIZE", "50")];
    let app = stack.app_with(FUNCTION, &page);
    let crashing =
        stack.app_with(FUNCTION, &[("MIGRATE_PAGE_SIZE", "50"), ("MIGRATE_FAIL_AFTER_PAGES", "2")]);
    const USERS: usize = 1_200;
    seed(&stack, (0..USERS).map(user_item).collect()).await;
    let before = snapshot(&stack).await;

    let run_id = up(&app, Some(4), false).await["run_id"].as_str().unwrap().to_owned();
    // First delivery of every segment: two pages applied, then a crash before
    // the second page's checkpoint. All four deliveries fail.
    let queue = QueueTrigger::new(&stack, "JobsQueue");
    let first = queue.receive(10).await;
    assert_eq!(first.records.len(), 4);
    for message in &first.records {
        let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
        event.records = vec![message.clone()];
        let Ok(Output::Batch(response)) =
            migrate::handler(&crashing, invocation(Input::Jobs(event.clone()), None)).await
        else {
            panic!("batch response expected")
        };
        assert_eq!(response.batch_item_failures.len(), 1, "the crash fails the message");
        queue.settle(&event, &response).await;
    }
    let checkpoints =
        caas::store::migrations::checkpoints(&stack.clients.dynamodb, &stack.table(), &run_id).await.unwrap();
    assert_eq!(checkpoints.len(), 4);
    assert!(
        checkpoints.iter().all(|c| c.pages == 1 && !c.done),
        "only the first page of each segment is checkpointed"
    );
    let counted: u64 = checkpoints.iter().map(|c| c.counters.items_changed).sum();
    let crashed = snapshot(&stack).await;
    let migrated_before_resume =
        crashed.values().filter(|i| i.get("schema_version") == Some(&AttributeValue::N("4".into()))).count()
            as u64;
    assert!(migrated_before_resume > counted, "the crashed pages were applied but not checkpointed");

    // A live write (a login that rehashes a legacy password) on an item the
    // crashed page already migrated: the resumed run must not touch it again.
    let (live_key, _) = crashed
        .iter()
        .find(|(_, i)| i.get("needs_rehash").is_some())
        .expect("a flagged user among the migrated ones");
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table())
        .key("pk", s(&live_key.0))
        .key("sk", s(&live_key.1))
        .update_expression("SET password_hash = :argon REMOVE needs_rehash")
        .expression_attribute_values(":argon", s("$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA"))
        .send()
        .await
        .unwrap();

    // Redelivery (the same messages, visible again) with a healthy function.
    assert_eq!(drive(&stack, &app, None).await, 0);
    let done = status(&app).await;
    assert_eq!(done["current_version"], 4);
    let entry = last_history(&done);
    let (changed, current) =
        (entry["items_changed"].as_u64().unwrap(), entry["items_current"].as_u64().unwrap());
    assert_eq!(changed + current, USERS as u64, "every item was counted once");
    assert_eq!(
        current,
        migrated_before_resume - counted,
        "exactly the crashed pages' items were found already migrated"
    );
    assert_eq!(entry["items_scanned"], USERS as u64);

    let mut expected = expected_after_up(&before, 4);
    let live = expected.get_mut(live_key).unwrap();
    live.insert("password_hash".into(), s("$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA"));
    live.remove("needs_rehash");
    assert_eq!(snapshot(&stack).await, expected, "none skipped, none transformed twice, the live write kept");
}

#[tokio::test]
async fn two_runs_never_overlap_and_live_writes_survive() {
    let stack = TestStack::new().await;
    let app = stack.app_with(FUNCTION, &[("MIGRATE_PAGE_SIZE", "100")]);
    const USERS: usize = 1_500;
    seed(&stack, (0..USERS).map(user_item).collect()).await;

    let (a, b) = tokio::join!(
        command(&app, Command::Up { to: Some(6), segments: Some(4), dry_run: false }),
        command(&app, Command::Up { to: Some(6), segments: Some(4), dry_run: false }),
    );
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one run may start: {other:?}"),
    };
    assert!(loser.contains("holds the migration lock"), "{loser}");
    assert!(loser.contains(winner["run_id"].as_str().unwrap()), "the refusal names the running run: {loser}");
    let down = command(&app, Command::Down { to: 1, segments: None, dry_run: false }).await;
    assert!(down.is_err(), "a down while the run holds the lock is refused too");
    let running = status(&app).await;
    assert_eq!(running["running"]["run"]["run_id"], winner["run_id"]);

    // Live writes while the run works: a login counter on every tenth user,
    // and on legacy users a rehash that also clears the flag.
    let live = async {
        for round in 0..3 {
            for i in (0..USERS).step_by(10) {
                let mut update = "ADD login_count :one".to_owned();
                let mut request = stack
                    .clients
                    .dynamodb
                    .update_item()
                    .table_name(stack.table())
                    .key("pk", s(&format!("T#{TENANT}#USER#{}", email(i))))
                    .key("sk", s("USER"))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()));
                if i % 3 == 0 && round == 1 {
                    update = "SET password_hash = :argon ADD login_count :one REMOVE needs_rehash".to_owned();
                    request =
                        request.expression_attribute_values(":argon", s("$argon2id$v=19$m=64,t=1,p=1$eA$eA"));
                }
                request.update_expression(update).send().await.unwrap();
            }
        }
    };
    let (failed, ()) = tokio::join!(drive(&stack, &app, None), live);
    assert_eq!(failed, 0);

    let done = status(&app).await;
    assert_eq!(done["current_version"], 6);
    assert_eq!(done["history"].as_array().unwrap().len(), 1, "one run only");
    let items = snapshot(&stack).await;
    assert_eq!(items[&(format!("T#{TENANT}#TENANT"), "TENANT".to_owned())]["signup"], s("open"));
    for i in 0..USERS {
        let item = &items[&(format!("T#{TENANT}#USER#{}", email(i)), "USER".to_owned())];
        assert_eq!(item.get("schema_version"), Some(&AttributeValue::N("5".into())), "user {i}");
        let user_id = item["user_id"].as_s().unwrap();
        let entry = &items[&(format!("T#{TENANT}#MEMBERS"), format!("USER#{user_id}"))];
        assert_eq!((&entry["role"], &entry["email"]), (&s("member"), &s(&email(i))), "user {i}'s entry");
        assert!(item.get("created_at_ms").is_some() && item.get("created_at").is_none(), "user {i}");
        if i % 10 == 0 {
            assert_eq!(
                item.get("login_count"),
                Some(&AttributeValue::N("3".into())),
                "live writes to user {i} kept"
            );
        }
        if i % 30 == 0 {
            assert!(item.get("needs_rehash").is_none(), "user {i} was rehashed live; never re-flagged");
        } else if i % 3 == 0 {
            assert_eq!(item.get("needs_rehash"), Some(&AttributeValue::Bool(true)), "user {i}");
        }
    }
    // The lock is free again: the next command runs.
    command(&app, Command::Up { to: None, segments: Some(2), dry_run: true })
        .await
        .expect("the lock was released");
}

#[tokio::test]
async fn failed_items_past_the_threshold_fail_the_run_and_down_rolls_back() {
    let stack = TestStack::new().await;
    let app = stack.app_with(FUNCTION, &[("MIGRATE_PAGE_SIZE", "50"), ("MIGRATE_MAX_FAILED_ITEMS", "5")]);
    let mut items: Vec<Item> = (0..400).map(user_item).collect();
    for item in items.iter_mut().step_by(20) {
        item.insert("created_at".into(), s("last tuesday"));
    }
    seed(&stack, items).await;
    let before = snapshot(&stack).await;

    // A dry run reports what would change and writes nothing.
    up(&app, Some(2), true).await;
    assert_eq!(drive(&stack, &app, None).await, 0);
    let dry = status(&app).await;
    assert_eq!(dry["current_version"], 1, "a dry run does not move the version");
    assert_eq!(last_history(&dry)["dry_run"], true);
    assert_eq!(snapshot(&stack).await, before);

    up(&app, Some(4), false).await;
    assert_eq!(drive(&stack, &app, None).await, 0);
    let failed = status(&app).await;
    let entry = last_history(&failed);
    assert_eq!(entry["status"], "failed", "{entry}");
    assert!(entry["failure"].as_str().unwrap().contains("threshold 5"));
    assert!(entry["items_failed"].as_u64().unwrap() > 5);
    assert_eq!(failed["current_version"], 1);
    assert!(failed["running"].is_null(), "a failed run releases the lock");

    // Rollback: down to the version the table is at reverts what the failed run changed.
    command(&app, Command::Down { to: 1, segments: Some(4), dry_run: false }).await.expect("down starts");
    assert_eq!(drive(&stack, &app, None).await, 0);
    assert_eq!(last_history(&status(&app).await)["status"], "succeeded");
    assert_eq!(snapshot(&stack).await, before);
}

#[tokio::test]
async fn sample_events_run_through_the_handler() {
    let stack = TestStack::new().await;
    let app = stack.app(FUNCTION);
    seed(&stack, (0..40).map(user_item).collect()).await;

    let input: Input = serde_json::from_str(&event_file("migrate-status.json")).unwrap();
    let Ok(Output::Report(report)) = migrate::handler(&app, invocation(input, None)).await else {
        panic!("status")
    };
    assert_eq!(report["current_version"], 1);

    let run_id = up(&app, Some(4), false).await["run_id"].as_str().unwrap().to_owned();
    // The sample carries segment 0 of a 4-segment run up to 4: run it for this run.
    let sample = event_file("migrate.json").replace("{{RUN_ID}}", &run_id);
    let input: Input = serde_json::from_str(&sample).unwrap();
    let Ok(Output::Batch(response)) = migrate::handler(&app, invocation(input, None)).await else {
        panic!("batch")
    };
    assert!(response.batch_item_failures.is_empty());
    let checkpoint =
        caas::store::migrations::get_checkpoint(&stack.clients.dynamodb, &stack.table(), &run_id, 0)
            .await
            .unwrap()
            .expect("segment 0 ran");
    assert!(checkpoint.done);

    // The queued message for segment 0 is now a duplicate; the rest finish the run.
    assert_eq!(drive(&stack, &app, None).await, 0);
    assert_eq!(status(&app).await["current_version"], 4);

    // A message for an unknown run is dropped, a malformed one is failed.
    let unknown = event_file("migrate.json").replace("{{RUN_ID}}", "0190aaaa-0000-7000-8000-000000000000");
    let Ok(Output::Batch(response)) =
        migrate::handler(&app, invocation(serde_json::from_str(&unknown).unwrap(), None)).await
    else {
        panic!("batch")
    };
    assert!(response.batch_item_failures.is_empty());
    let malformed =
        event_file("migrate.json").replace(r#"\"job\":\"migrate.segment\""#, r#"\"job\":\"nope\""#);
    let Ok(Output::Batch(response)) =
        migrate::handler(&app, invocation(serde_json::from_str(&malformed).unwrap(), None)).await
    else {
        panic!("batch")
    };
    assert_eq!(response.batch_item_failures.len(), 1);
}

/// A ledger account as the release before owners and limits wrote it.
fn legacy_account(id: &str, allow_overdraft: bool) -> Item {
    let zero = || AttributeValue::N("0".into());
    Item::from([
        ("pk".into(), s(&format!("T#{TENANT}#ACCOUNT#{id}"))),
        ("sk".into(), s("ACCOUNT")),
        ("kind".into(), s("account")),
        ("gsi1pk".into(), s(&format!("T#{TENANT}#ACCOUNTS"))),
        ("gsi1sk".into(), s(id)),
        ("schema_version".into(), AttributeValue::N("1".into())),
        ("tenant_id".into(), s(TENANT)),
        ("account_id".into(), s(id)),
        ("currency".into(), s("USD")),
        ("allow_overdraft".into(), AttributeValue::Bool(allow_overdraft)),
        ("debits_pending".into(), zero()),
        ("credits_pending".into(), zero()),
        ("debits_posted".into(), zero()),
        ("credits_posted".into(), zero()),
        ("available".into(), zero()),
        ("created_at".into(), s("2025-06-01T00:00:00Z")),
    ])
}

/// A tenant whose items all predate the access model (no tenant record, a
/// user without role or directory entry, accounts without owner or limit)
/// works again after v5 and v6: the user logs in as a member, the accounts
/// are the tenant's, the overdraft one bounded by the default limit (also
/// before v6 reaches it), the operator names the first owner and changes a
/// limit, and `down` refuses what the old layout cannot express.
#[tokio::test]
async fn legacy_tenants_users_and_accounts_get_the_access_model() {
    use caas::store::account_layouts::LEGACY_OVERDRAFT_LIMIT;
    use caas_tests::api::{Api, PASSWORD};
    let stack = TestStack::new().await;
    let app = stack.app(FUNCTION);
    let api = Api::new(&stack);
    let mut user = user_item(0);
    user.insert("password_hash".into(), s(&bcrypt::hash(PASSWORD, 4).unwrap()));
    // The sample of the tenants job names the funding account.
    let (funding, wallet) = ("0190aaaa-0000-7000-8000-00000000a001", "0190aaaa-0000-7000-8000-00000000a002");
    seed(&stack, vec![user, legacy_account(funding, true), legacy_account(wallet, false)]).await;
    let credentials = serde_json::json!({"tenant_id": TENANT, "email": email(0), "password": PASSWORD});
    let login = || {
        let body = credentials.to_string();
        api.call(
            "LoginFunction",
            caas_tests::api::api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body)),
        )
    };
    assert_eq!(login().await.status(), 403, "no tenant record yet");

    up(&app, Some(5), false).await;
    assert_eq!(drive(&stack, &app, None).await, 0);
    let (code, tokens) = parts(&login().await);
    assert_eq!(code, 200, "{tokens}");
    let member = tokens["access_token"].as_str().unwrap();
    assert_eq!(caas_tests::api::claims(member)["roles"], serde_json::json!(["member"]));
    assert_eq!(
        api.get("GetAccountFunction", "/v1/accounts/{id}", wallet, member, &[]).await.status(),
        404,
        "legacy accounts are the tenant's"
    );

    // The operator names the first owner (docs/RUNBOOK.md).
    let owner = api.invited(TENANT, "first-owner@acme.example", caas::auth::Role::Owner).await;
    let (_, account) = parts(&api.get("GetAccountFunction", "/v1/accounts/{id}", funding, &owner, &[]).await);
    assert_eq!(account["owner"], serde_json::json!({"type": "tenant"}));
    assert_eq!(account["overdraft_limit"], LEGACY_OVERDRAFT_LIMIT);
    // Still v1: the old rule, bounded by the default limit.
    assert_eq!(api.authorize(&owner, funding, wallet, LEGACY_OVERDRAFT_LIMIT, "USD").await.status(), 201);
    assert_eq!(api.authorize(&owner, funding, wallet, 1, "USD").await.status(), 422);

    up(&app, Some(6), false).await;
    assert_eq!(drive(&stack, &app, None).await, 0);
    assert_eq!(status(&app).await["current_version"], 6);
    let items = snapshot(&stack).await;
    let migrated = &items[&(format!("T#{TENANT}#ACCOUNT#{funding}"), "ACCOUNT".to_owned())];
    assert_eq!(
        (&migrated["owner"], &migrated["overdraft_limit"], &migrated["spendable"]),
        (
            &s("tenant"),
            &AttributeValue::N(LEGACY_OVERDRAFT_LIMIT.to_string()),
            &AttributeValue::N("0".into())
        )
    );
    assert_eq!(api.authorize(&owner, funding, wallet, 1, "USD").await.status(), 422, "the same bound");

    // The operator raises the limit (the tenants job's sample).
    let sample: Value = serde_json::from_str(&event_file("tenants-set-overdraft-limit.json")).unwrap();
    let answer = tenants::handler(&stack.app("TenantsFunction"), invocation(sample, None)).await.unwrap();
    assert_eq!(answer, serde_json::json!({"account_id": funding, "overdraft_limit": 50_000_000}));
    assert_eq!(api.authorize(&owner, funding, wallet, 40_000_000, "USD").await.status(), 201);

    // Down refuses the account whose limit v1 cannot express, reverts the other.
    command(&app, Command::Down { to: 5, segments: Some(1), dry_run: false }).await.expect("down starts");
    assert_eq!(drive(&stack, &app, None).await, 0);
    assert_eq!(last_history(&status(&app).await)["items_failed"], 1);
    let items = snapshot(&stack).await;
    let reverted = &items[&(format!("T#{TENANT}#ACCOUNT#{wallet}"), "ACCOUNT".to_owned())];
    assert!(reverted.get("owner").is_none() && reverted.get("overdraft_limit").is_none());
}
