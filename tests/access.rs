//! The access model against the emulator: the operator's tenants job (with
//! its events/ samples), registration into existing, active tenants only
//! (invitations or open signup), suspension, roles in the token and
//! `/v1/me`, the admin routes and their rules, revocation on role change, and
//! events that name their actor and carry no email.

use caas::outbox::OutboxEvent;
use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::triggers::lambda_event;
use caas_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

/// One API call, its (large, in debug builds) future on the heap, so long
/// tests do not overflow the test thread's stack.
async fn call(api: &Api<'_>, function: &str, request: lambda_http::Request) -> Response<Body> {
    Box::pin(api.call(function, request)).await
}

/// Runs the tenants job with `payload`; its answer, or its error message.
async fn job(stack: &TestStack, payload: Value) -> Result<Value, String> {
    let app = stack.app("TenantsFunction");
    Box::pin(tenants::handler(&app, lambda_event(payload))).await.map_err(|e| e.to_string())
}

fn sample(name: &str) -> Value {
    serde_json::from_str(&event_file(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

async fn create_tenant(stack: &TestStack, tenant: &str, signup: &str) -> Value {
    let owner = format!("owner@{tenant}.example");
    let payload = json!({"action": "create", "tenant_id": tenant, "name": tenant, "signup": signup, "owner_email": owner});
    job(stack, payload).await.expect("tenant created")
}

async fn register(api: &Api<'_>, tenant: &str, email: &str, invitation: Option<&str>) -> Response<Body> {
    let mut body = json!({"tenant_id": tenant, "email": email, "password": PASSWORD});
    if let Some(invitation) = invitation {
        body["invitation"] = invitation.into();
    }
    call(api, "RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body.to_string())))
        .await
}

async fn login_as(api: &Api<'_>, tenant: &str, email: &str, password: &str) -> Response<Body> {
    let body = json!({"tenant_id": tenant, "email": email, "password": password}).to_string();
    call(api, "LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body))).await
}

/// Logs in; returns (access token, refresh token).
async fn login(api: &Api<'_>, tenant: &str, email: &str) -> (String, String) {
    let (status, tokens) = parts(&login_as(api, tenant, email, PASSWORD).await);
    assert_eq!(status, 200, "{tokens}");
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(api: &Api<'_>, refresh_token: &str) -> Response<Body> {
    let body = json!({"refresh_token": refresh_token}).to_string();
    call(api, "RefreshFunction", api_event("POST", "/v1/auth/refresh", &[], &[], &[], Some(&body))).await
}

/// Registers `email` with `invitation` and logs in: (user id, access token).
async fn join(api: &Api<'_>, tenant: &str, email: &str, invitation: &str) -> (String, String) {
    let (status, user) = parts(&register(api, tenant, email, Some(invitation)).await);
    assert_eq!(status, 201, "{user}");
    let (token, _) = login(api, tenant, email).await;
    (user["user_id"].as_str().unwrap().to_owned(), token)
}

/// A new invite-only tenant and its first owner, logged in: (owner id, token).
async fn tenant_with_owner(stack: &TestStack, api: &Api<'_>, tenant: &str) -> (String, String) {
    let created = create_tenant(stack, tenant, "invite_only").await;
    let invitation = created["owner_invitation"]["token"].as_str().unwrap();
    join(api, tenant, &format!("owner@{tenant}.example"), invitation).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn invite(api: &Api<'_>, token: &str, email: &str, role: &str) -> Response<Body> {
    let auth = bearer(token);
    let body = json!({"email": email, "role": role}).to_string();
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    call(
        api,
        "CreateInvitationFunction",
        api_event("POST", "/v1/invitations", &[], &[], &headers, Some(&body)),
    )
    .await
}

/// Invites `email` as `role` and returns the token (the invitation must succeed).
async fn invitation(api: &Api<'_>, token: &str, email: &str, role: &str) -> String {
    let (status, body) = parts(&invite(api, token, email, role).await);
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn patch_user(api: &Api<'_>, token: &str, user_id: &str, change: Value) -> Response<Body> {
    let auth = bearer(token);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let request =
        api_event("PATCH", "/v1/users/{id}", &[("id", user_id)], &[], &headers, Some(&change.to_string()));
    call(api, "UpdateUserFunction", request).await
}

async fn list_users(api: &Api<'_>, token: &str, query: &[(&str, &str)]) -> Response<Body> {
    let auth = bearer(token);
    let request = api_event("GET", "/v1/users", &[], query, &[("authorization", auth.as_str())], None);
    call(api, "ListUsersFunction", request).await
}

async fn me(api: &Api<'_>, token: &str) -> Response<Body> {
    let auth = bearer(token);
    call(api, "MeFunction", api_event("GET", "/v1/me", &[], &[], &[("authorization", auth.as_str())], None))
        .await
}

/// The claims of an access token (its signature is checked by the functions).
fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let part = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn types(events: &[OutboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn the_tenant_lifecycle_through_the_job_and_its_samples() {
    let stack = TestStack::new().await;

    let created = job(&stack, sample("tenants-create.json")).await.expect("create");
    assert_eq!(created["tenant"]["tenant_id"], "acme");
    assert_eq!(created["tenant"]["name"], "Acme Corp");
    assert_eq!(created["tenant"]["signup"], "invite_only");
    assert_eq!(created["tenant"]["status"], "active");
    assert_eq!(created["tenant"]["owner_count"], 0);
    let owner_invitation = &created["owner_invitation"];
    assert_eq!(owner_invitation["role"], "owner");
    assert_eq!(owner_invitation["email"], "owner@acme.example");
    let token = owner_invitation["token"].as_str().unwrap();
    assert!(token.len() >= 43 + 9, "256 random bits after the prefix: {token}");
    // Stored only as a hash: the secret appears nowhere in the table.
    let scan = stack.clients.dynamodb.scan().table_name(stack.table()).send().await.unwrap();
    let secret = token.rsplit('.').next().unwrap();
    assert!(!format!("{:?}", scan.items()).contains(secret), "the invitation token is not stored");
    assert!(!format!("{:?}", scan.items()).contains(token));

    let got = job(&stack, sample("tenants-get.json")).await.expect("get");
    assert_eq!(got, created["tenant"]);
    let updated = job(&stack, sample("tenants-update.json")).await.expect("update");
    assert_eq!(
        (updated["name"].as_str(), updated["signup"].as_str()),
        (Some("Acme Corporation"), Some("open"))
    );
    let suspended = job(&stack, sample("tenants-suspend.json")).await.expect("suspend");
    assert_eq!(suspended["status"], "suspended");
    assert!(suspended["suspended_at"].is_string());
    let again = job(&stack, sample("tenants-suspend.json")).await.expect_err("already suspended");
    assert!(again.contains("already suspended"), "{again}");
    let reactivated = job(&stack, sample("tenants-reactivate.json")).await.expect("reactivate");
    assert_eq!(reactivated["status"], "active");
    assert!(reactivated.get("suspended_at").is_none());
    let invited = job(&stack, sample("tenants-invite.json")).await.expect("invite");
    assert_eq!((invited["role"].as_str(), invited["tenant_id"].as_str()), (Some("owner"), Some("acme")));

    // Listing pages through every tenant.
    for tenant in ["beta", "gamma"] {
        create_tenant(&stack, tenant, "open").await;
    }
    let listed = job(&stack, sample("tenants-list.json")).await.expect("list");
    let ids: Vec<&str> =
        listed["tenants"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "beta", "gamma"]);
    let first = job(&stack, json!({"action": "list", "limit": 2})).await.unwrap();
    assert_eq!(first["tenants"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = job(&stack, json!({"action": "list", "limit": 2, "cursor": cursor})).await.unwrap();
    assert_eq!(second["tenants"][0]["tenant_id"], "gamma");

    // Clear refusals, never a panic.
    for (payload, says) in [
        (sample("tenants-create.json"), "already exists"),
        (json!({"action": "get", "tenant_id": "nope"}), "tenant not found"),
        (json!({"action": "suspend", "tenant_id": "nope"}), "tenant not found"),
        (
            json!({"action": "create", "tenant_id": "ACME!", "name": "x", "owner_email": "o@x.example"}),
            "tenant_id",
        ),
        (
            json!({"action": "create", "tenant_id": "delta", "name": "x", "owner_email": "not-an-email"}),
            "owner_email",
        ),
        (json!({"action": "create", "tenant_id": "delta", "name": "", "owner_email": "o@x.example"}), "name"),
        (
            json!({"action": "create", "tenant_id": "delta", "name": "x", "owner_email": "o@x.example", "signup": "all"}),
            "signup",
        ),
        (json!({"action": "update", "tenant_id": "acme"}), "name or signup"),
        (json!({"action": "invite", "tenant_id": "acme", "email": "x@x.example", "role": "root"}), "role"),
        (json!({"action": "list", "cursor": "NOT A CURSOR"}), "cursor"),
        (json!({"action": "destroy", "tenant_id": "acme"}), "unknown variant"),
        (json!({"tenant_id": "acme"}), "action"),
    ] {
        let error = job(&stack, payload.clone()).await.expect_err(&payload.to_string());
        assert!(error.contains(says), "{payload}: {error}");
    }

    // Every change is audited with the operator as its actor.
    let events = stored_events(&stack, "acme").await;
    assert_eq!(
        types(&events),
        [
            "tenant.created",
            "invitation.created",
            "tenant.updated",
            "tenant.suspended",
            "tenant.reactivated",
            "invitation.created"
        ]
    );
    for event in &events {
        assert_eq!(
            event.payload["actor"],
            json!({"type": "operator", "id": "operator"}),
            "{}",
            event.event_type
        );
        assert!(!event.payload.to_string().contains('@'), "no email in {}", event.event_type);
    }
    assert_eq!(events[0].payload["signup"], "invite_only");
    assert_eq!(events[1].payload["role"], "owner");
}

/// The refusal every inadmissible registration gets.
fn refusal(response: &Response<Body>) -> Value {
    assert_problem(response, 403)
}

#[tokio::test]
async fn registration_admits_only_what_the_tenant_allows() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let created = create_tenant(&stack, "acme", "invite_only").await;
    let owner_token = created["owner_invitation"]["token"].as_str().unwrap().to_owned();
    create_tenant(&stack, "globex", "open").await;
    let globex_invitation = {
        let created = job(
            &stack,
            json!({"action": "invite", "tenant_id": "globex", "email": "x@acme.example", "role": "member"}),
        )
        .await
        .unwrap();
        created["token"].as_str().unwrap().to_owned()
    };

    let unknown = refusal(&register(&api, "nope", "ada@acme.example", None).await);
    assert_eq!(unknown["type"], "urn:caas:problem:forbidden");
    let forged = format!("inv1.acme.{}", "A".repeat(43));
    let unknown_with_invitation = format!("inv1.nope.{}", "A".repeat(43));
    for (case, response) in [
        (
            "unknown tenant with an invitation",
            register(&api, "nope", "ada@acme.example", Some(&unknown_with_invitation)).await,
        ),
        ("invite-only, no invitation", register(&api, "acme", "ada@acme.example", None).await),
        ("malformed invitation", register(&api, "acme", "ada@acme.example", Some("not-an-invitation")).await),
        ("unknown invitation", register(&api, "acme", "ada@acme.example", Some(&forged)).await),
        (
            "another tenant's invitation",
            register(&api, "acme", "x@acme.example", Some(&globex_invitation)).await,
        ),
        ("another email", register(&api, "acme", "mallory@acme.example", Some(&owner_token)).await),
    ] {
        assert_eq!(refusal(&response), unknown, "{case}: the same answer as an unknown tenant");
    }

    // The invitation gives its role, once.
    stack.round_trips.reset();
    let (status, owner) = parts(&register(&api, "acme", "Owner@Acme.example", Some(&owner_token)).await);
    assert_eq!(status, 201, "{owner}");
    assert_eq!(owner["role"], "owner");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["GetItem", "TransactWriteItems"]);
    let tenant = job(&stack, json!({"action": "get", "tenant_id": "acme"})).await.unwrap();
    assert_eq!(tenant["owner_count"], 1, "counted with the registration");
    let used = register(&api, "acme", "owner@acme.example", Some(&owner_token)).await;
    assert_eq!(refusal(&used), unknown, "used");

    let (owner_access, _) = login(&api, "acme", "owner@acme.example").await;
    let auditor = invitation(&api, &owner_access, "audrey@acme.example", "auditor").await;
    let (status, audrey) = parts(&register(&api, "acme", "audrey@acme.example", Some(&auditor)).await);
    assert_eq!((status, audrey["role"].as_str()), (201, Some("auditor")));

    // Expired: 7 days by default.
    let late = invitation(&api, &owner_access, "late@acme.example", "member").await;
    stack.clock.advance(time::Duration::days(7));
    assert_eq!(refusal(&register(&api, "acme", "late@acme.example", Some(&late)).await), unknown, "expired");

    // Open signup: no invitation, role member, one transaction.
    stack.round_trips.reset();
    let (status, member) = parts(&register(&api, "globex", "bob@globex.example", None).await);
    assert_eq!((status, member["role"].as_str()), (201, Some("member")), "{member}");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["TransactWriteItems"]);
    assert_eq!(
        register(&api, "globex", "bob@globex.example", None).await.status(),
        409,
        "duplicates still conflict"
    );

    // Suspended: refused like an unknown tenant.
    job(&stack, json!({"action": "suspend", "tenant_id": "globex"})).await.unwrap();
    assert_eq!(refusal(&register(&api, "globex", "carl@globex.example", None).await), unknown, "suspended");
    job(&stack, json!({"action": "reactivate", "tenant_id": "globex"})).await.unwrap();
    assert_eq!(register(&api, "globex", "carl@globex.example", None).await.status(), 201);
}

#[tokio::test]
async fn a_suspended_tenant_refuses_login_and_refresh_and_its_tokens_run_out() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    open_tenant(&stack, "acme").await;
    assert_eq!(register(&api, "acme", "ada@acme.example", None).await.status(), 201);
    let (access, refresh_token) = login(&api, "acme", "ada@acme.example").await;

    job(&stack, json!({"action": "suspend", "tenant_id": "acme"})).await.unwrap();
    let refused = assert_problem(&login_as(&api, "acme", "ada@acme.example", PASSWORD).await, 403);
    assert_eq!(refused["detail"], "the tenant is suspended");
    // A wrong password is still the generic 401: suspension is only told to
    // someone who knows the password.
    assert_problem(&login_as(&api, "acme", "ada@acme.example", "wrong password!!").await, 401);
    stack.round_trips.reset();
    assert_eq!(
        assert_problem(&refresh(&api, &refresh_token).await, 403)["detail"],
        "the tenant is suspended"
    );
    assert_eq!(stack.round_trips.operations("dynamodb"), ["GetItem", "TransactWriteItems"], "no extra read");

    // Issued access tokens keep working until they expire (15 minutes).
    assert_eq!(me(&api, &access).await.status(), 200);
    stack.clock.advance(time::Duration::seconds(899));
    assert_eq!(me(&api, &access).await.status(), 200);
    stack.clock.advance(time::Duration::seconds(1));
    assert_problem(&me(&api, &access).await, 401);

    // Reactivated: the refused refresh spent nothing, so the token still rotates.
    job(&stack, json!({"action": "reactivate", "tenant_id": "acme"})).await.unwrap();
    assert_eq!(refresh(&api, &refresh_token).await.status(), 200);
    login(&api, "acme", "ada@acme.example").await;
}

#[tokio::test]
async fn roles_are_in_the_token_and_in_me() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (owner_id, owner) = tenant_with_owner(&stack, &api, "acme").await;
    let claims_of_owner = claims(&owner);
    assert_eq!(claims_of_owner["roles"], json!(["owner"]));
    assert_eq!(claims_of_owner["sub"], owner_id.as_str());
    assert!(claims_of_owner.get("client_id").is_none(), "a user token");

    let (status, body) = parts(&me(&api, &owner).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"id": owner_id, "kind": "user", "tenant_id": "acme", "roles": ["owner"]}));
    stack.round_trips.reset();
    me(&api, &owner).await;
    assert!(stack.round_trips.operations("dynamodb").is_empty(), "from the token alone");

    let token = invitation(&api, &owner, "mia@acme.example", "member").await;
    let (member_id, member) = join(&api, "acme", "mia@acme.example", &token).await;
    let (_, body) = parts(&me(&api, &member).await);
    assert_eq!(body, json!({"id": member_id, "kind": "user", "tenant_id": "acme", "roles": ["member"]}));
    // A refreshed token keeps the family's roles.
    let (_, refresh_token) = login(&api, "acme", "mia@acme.example").await;
    let (status, rotated) = parts(&refresh(&api, &refresh_token).await);
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(claims(rotated["access_token"].as_str().unwrap())["roles"], json!(["member"]));

    assert_problem(&call(&api, "MeFunction", api_event("GET", "/v1/me", &[], &[], &[], None)).await, 401);
    assert_problem(&me(&api, "not-a-token").await, 401);
}

#[tokio::test]
async fn admin_routes_follow_the_rules() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (owner_id, owner) = tenant_with_owner(&stack, &api, "acme").await;
    let admin_invitation = invitation(&api, &owner, "adam@acme.example", "admin").await;
    let (admin_id, admin) = join(&api, "acme", "adam@acme.example", &admin_invitation).await;
    let member_invitation = invitation(&api, &admin, "mia@acme.example", "member").await;
    let (member_id, member) = join(&api, "acme", "mia@acme.example", &member_invitation).await;

    // Invitations: an admin cannot invite an owner; a member invites nobody.
    let body = assert_problem(&invite(&api, &admin, "o2@acme.example", "owner").await, 403);
    assert_eq!(body["detail"], "only an owner can invite an owner");
    assert_problem(&invite(&api, &member, "x@acme.example", "member").await, 403);
    assert_eq!(invite(&api, &owner, "o2@acme.example", "owner").await.status(), 201, "an owner can");
    assert_eq!(assert_problem(&invite(&api, &owner, "x@acme.example", "root").await, 400)["field"], "role");
    assert_eq!(assert_problem(&invite(&api, &owner, "not-an-email", "member").await, 400)["field"], "email");

    // Listing, paged, for owners and admins only.
    assert_problem(&list_users(&api, &member, &[]).await, 403);
    stack.round_trips.reset();
    let (status, page) = parts(&list_users(&api, &admin, &[("limit", "2")]).await);
    assert_eq!(status, 200, "{page}");
    // The page, then its users' keys in one read (their emails are sealed).
    assert_eq!(stack.round_trips.operations("dynamodb"), ["Query", "BatchGetItem"]);
    let first: Vec<&str> =
        page["users"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap()).collect();
    assert_eq!(first, [owner_id.as_str(), admin_id.as_str()]);
    assert_eq!(page["users"][0]["email"], "owner@acme.example");
    assert_eq!(page["users"][0]["role"], "owner");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = parts(&list_users(&api, &admin, &[("limit", "2"), ("cursor", &cursor)]).await);
    assert_eq!(rest["users"][0]["user_id"], member_id.as_str());
    assert_eq!(rest["users"][0]["status"], "active");
    for query in [[("limit", "0")], [("limit", "101")], [("limit", "x")], [("cursor", "nope")]] {
        assert_problem(&list_users(&api, &admin, &query).await, 400);
    }

    // An admin cannot change an owner, nor make one.
    let body = assert_problem(&patch_user(&api, &admin, &owner_id, json!({"role": "member"})).await, 403);
    assert_eq!(body["detail"], "an admin cannot change an owner or make someone an owner");
    assert_problem(&patch_user(&api, &admin, &member_id, json!({"role": "owner"})).await, 403);
    assert_problem(&patch_user(&api, &member, &admin_id, json!({"status": "disabled"})).await, 403);
    stack.round_trips.reset();
    let (status, changed) = parts(&patch_user(&api, &admin, &member_id, json!({"role": "auditor"})).await);
    assert_eq!((status, changed["role"].as_str()), (200, Some("auditor")), "{changed}");
    // The entry, the change, and the user's key to show the (sealed) email in the answer.
    assert_eq!(stack.round_trips.operations("dynamodb"), ["GetItem", "TransactWriteItems", "GetItem"]);

    // The last owner can be neither demoted nor disabled...
    for change in [json!({"role": "admin"}), json!({"status": "disabled"})] {
        let body = assert_problem(&patch_user(&api, &owner, &owner_id, change).await, 409);
        assert_eq!(body["detail"], "the last owner of a tenant cannot be demoted or disabled");
    }
    // ...but can step down once someone else is an owner.
    let (status, promoted) = parts(&patch_user(&api, &owner, &admin_id, json!({"role": "owner"})).await);
    assert_eq!((status, promoted["role"].as_str()), (200, Some("owner")));
    let (status, _) = parts(&patch_user(&api, &owner, &owner_id, json!({"role": "admin"})).await);
    assert_eq!(status, 200);
    let tenant = job(&stack, json!({"action": "get", "tenant_id": "acme"})).await.unwrap();
    assert_eq!(tenant["owner_count"], 1);
    let (new_owner, _) = login(&api, "acme", "adam@acme.example").await;
    assert_eq!(claims(&new_owner)["roles"], json!(["owner"]));
    assert_problem(&patch_user(&api, &new_owner, &admin_id, json!({"status": "disabled"})).await, 409);

    // The stored role decides, not only the token: the former owner's token
    // still says owner, but their entry says admin now.
    assert_eq!(claims(&owner)["roles"], json!(["owner"]));
    let body = assert_problem(&invite(&api, &owner, "o3@acme.example", "owner").await, 403);
    assert_eq!(body["detail"], "your current role does not allow this invitation");
    let body = assert_problem(&patch_user(&api, &owner, &admin_id, json!({"role": "member"})).await, 403);
    assert_eq!(body["detail"], "your current role does not allow this change");

    // Disabled: no login (403 with the right password), no refresh.
    let (_, member_refresh) = login(&api, "acme", "mia@acme.example").await;
    assert_eq!(patch_user(&api, &new_owner, &member_id, json!({"status": "disabled"})).await.status(), 200);
    let body = assert_problem(&login_as(&api, "acme", "mia@acme.example", PASSWORD).await, 403);
    assert_eq!(body["detail"], "the user is disabled");
    assert_problem(&login_as(&api, "acme", "mia@acme.example", "wrong password!!").await, 401);
    assert_problem(&refresh(&api, &member_refresh).await, 401);
    assert_eq!(patch_user(&api, &new_owner, &member_id, json!({"status": "active"})).await.status(), 200);
    login(&api, "acme", "mia@acme.example").await;

    // Not found, bad input, another tenant's user.
    assert_problem(&patch_user(&api, &new_owner, &caas::ids::new_id(), json!({"role": "member"})).await, 404);
    assert_problem(&patch_user(&api, &new_owner, "../etc", json!({"role": "member"})).await, 404);
    for (change, field) in [
        (json!({}), "body"),
        (json!({"role": "superuser"}), "role"),
        (json!({"status": "gone"}), "status"),
        (json!({"role": "member", "email": "x"}), "email"),
    ] {
        let body = assert_problem(&patch_user(&api, &new_owner, &member_id, change.clone()).await, 400);
        assert_eq!(body["field"], field, "{change}");
    }
    let (_, globex_owner) = tenant_with_owner(&stack, &api, "globex").await;
    assert_problem(&patch_user(&api, &globex_owner, &member_id, json!({"role": "admin"})).await, 404);
    let (_, globex_page) = parts(&list_users(&api, &globex_owner, &[]).await);
    assert_eq!(globex_page["users"].as_array().unwrap().len(), 1, "only its own users");
}

#[tokio::test]
async fn a_role_change_revokes_the_users_refresh_tokens() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (_, owner) = tenant_with_owner(&stack, &api, "acme").await;
    let token = invitation(&api, &owner, "mia@acme.example", "member").await;
    let (member_id, _) = join(&api, "acme", "mia@acme.example", &token).await;
    let (_, first_session) = login(&api, "acme", "mia@acme.example").await;
    let (_, second_session) = login(&api, "acme", "mia@acme.example").await;
    let (status, rotated) = parts(&refresh(&api, &second_session).await);
    assert_eq!(status, 200);

    assert_eq!(patch_user(&api, &owner, &member_id, json!({"role": "admin"})).await.status(), 200);
    assert_problem(&refresh(&api, &first_session).await, 401);
    assert_problem(&refresh(&api, rotated["refresh_token"].as_str().unwrap()).await, 401);
    // A new login carries the new role.
    let (access, _) = login(&api, "acme", "mia@acme.example").await;
    assert_eq!(claims(&access)["roles"], json!(["admin"]));

    let events = stored_events(&stack, "acme").await;
    let changed = events.iter().find(|e| e.event_type == "user.role_changed").expect("user.role_changed");
    assert_eq!(changed.payload["user_id"], member_id.as_str());
    assert_eq!(
        (changed.payload["role"].as_str(), changed.payload["previous_role"].as_str()),
        (Some("admin"), Some("member"))
    );
}

#[tokio::test]
async fn events_name_their_actor_and_carry_no_email() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (owner_id, owner) = tenant_with_owner(&stack, &api, "acme").await;
    let token = invitation(&api, &owner, "mia@acme.example", "member").await;
    let (member_id, _) = join(&api, "acme", "mia@acme.example", &token).await;
    assert_eq!(login_as(&api, "acme", "mia@acme.example", "wrong password!!").await.status(), 401);
    let (member_access, member_refresh) = login(&api, "acme", "mia@acme.example").await;
    assert_eq!(refresh(&api, &member_refresh).await.status(), 200);
    assert_eq!(patch_user(&api, &owner, &member_id, json!({"status": "disabled"})).await.status(), 200);
    Box::pin(api.account(&owner, "EUR", false)).await;

    let events = stored_events(&stack, "acme").await;
    let emails = ["owner@acme.example", "mia@acme.example"];
    for event in &events {
        let actor = &event.payload["actor"];
        assert!(
            ["user", "client", "operator"].contains(&actor["type"].as_str().unwrap_or_default())
                && actor["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{} names its actor: {}",
            event.event_type,
            event.payload
        );
        let text = event.payload.to_string();
        for email in emails {
            assert!(!text.contains(email), "{} carries an email: {text}", event.event_type);
        }
    }
    let by_type = |event_type: &str| -> Vec<&OutboxEvent> {
        events.iter().filter(|e| e.event_type == event_type).collect()
    };
    let actor_of = |event: &OutboxEvent| event.payload["actor"].clone();
    assert_eq!(actor_of(by_type("tenant.created")[0]), json!({"type": "operator", "id": "operator"}));
    let invitations = by_type("invitation.created");
    assert_eq!(actor_of(invitations[0]), json!({"type": "operator", "id": "operator"}), "the owner's");
    assert_eq!(actor_of(invitations[1]), json!({"type": "user", "id": owner_id}), "the owner invited mia");
    let registered = by_type("user.registered");
    let mia = registered.iter().find(|e| e.aggregate_id == member_id).unwrap();
    let invitation_id = mia.payload["invitation_id"].clone();
    assert_eq!(
        mia.payload,
        json!({"user_id": member_id, "role": "member", "invitation_id": invitation_id, "actor": {"type": "user", "id": member_id}})
    );
    assert_eq!(by_type("invitation.accepted").len(), 2);
    assert_eq!(actor_of(by_type("user.disabled")[0]), json!({"type": "user", "id": owner_id}));
    assert_eq!(by_type("user.disabled")[0].payload["user_id"], member_id.as_str());
    for event_type in ["user.login_failed", "user.login_succeeded", "session.refreshed"] {
        assert!(!by_type(event_type).is_empty(), "{event_type}");
    }
    assert_eq!(actor_of(by_type("account.created")[0]), json!({"type": "user", "id": owner_id}));

    // The audit chain hashes the payloads, actors included.
    let writer = stack.app("AuditWriterFunction");
    let tenant = caas::tenant::TenantId::parse("acme").unwrap();
    caas::audit::append_events(&writer, &tenant, &events).await.unwrap();
    let (entries, _) =
        caas::store::audit::entries_after(&stack.clients.dynamodb, &stack.table(), "acme", 0, 100)
            .await
            .unwrap();
    let entries: Vec<_> = entries.into_iter().map(Result::unwrap).collect();
    assert_eq!(entries.len(), events.len());
    assert!(entries.iter().all(|e| e.payload.get("actor").is_some()));
    assert!(caas::audit::verify_chain(&stack.clients.dynamodb, &stack.table(), &tenant).await.unwrap().ok);

    // No log line carries an email, an invitation token or a token of ours.
    let logs = captured_logs();
    for secret in [token.as_str(), member_access.as_str(), member_refresh.as_str(), owner.as_str()] {
        assert!(!logs.contains(secret), "a token reached the logs");
    }
    for email in emails {
        assert!(!logs.contains(email), "an email reached the logs");
    }
}
