//! The authorization matrix: every HTTP route of template.yaml, run through
//! its real handler as each kind of principal, against the status the access
//! model gives it. The routes come from the template: a route without a row
//! in [`ROWS`] fails the test, and a route's row is one line.
//!
//! Principals (the columns, in [`COLUMNS`] order), in the open tenant `acme`
//! unless said otherwise:
//! - `anon`: no token;
//! - `own`: a member, owner of the resource (the account; the payer's account of a payment);
//! - `peer`: a member, owner of the payment's payee account (for accounts just another member);
//! - `other`: a member with nothing of theirs involved;
//! - `admin`, `owner`, `auditor`: users with that role;
//! - `client`, `client_aud`: machine clients with the role member / auditor;
//! - `foreign`: an admin of the tenant `globex`.
//!
//! The client principals are access tokens minted by
//! `caas::auth::service::issue_access_token` for a `PrincipalKind::Client`
//! principal with a role, as the client-credentials grant will issue them;
//! they have no directory entry, so no row here gives them a change that a
//! role (re-checked on the directory) permits.
//!
//! Routes that take no token (sign-in, JWKS) have one expected status for an
//! anonymous caller ([`Expect::Public`]).

use caas::auth::principal::Role;
use caas_tests::api::{Api, api_event};
use caas_tests::*;
use lambda_http::{Body, Response};
use std::collections::{BTreeSet, HashMap};

/// Who calls, one column each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Anon,
    Own,
    Peer,
    Other,
    Admin,
    Owner,
    Auditor,
    Client,
    ClientAuditor,
    Foreign,
}

use Who::*;

const COLUMNS: [Who; 10] = [Anon, Own, Peer, Other, Admin, Owner, Auditor, Client, ClientAuditor, Foreign];

/// What the row's `{id}` names, made fresh for every cell that changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixture {
    None,
    /// `own`'s account.
    OwnAccount,
    /// An account of the tenant itself.
    TenantAccount,
    /// A payment from `own`'s account to `peer`'s, authorized (fresh per cell).
    Authorized,
    /// The same, captured (fresh per cell).
    Captured,
    /// The user `other` (for the user administration routes).
    OtherUser,
    /// A machine client of the tenant, created by its owner (fresh per cell).
    Client,
    /// A group conversation `own` created (its admin) with `peer` (a member), fresh per cell.
    Conversation,
    /// The same, with a message of `own` at sequence number 1.
    Message,
    /// The same, with an upload of `own` (uploaded, not completed): `{media_id}`.
    Media,
    /// An id no resource has.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The status for each principal, in [`COLUMNS`] order.
    Each([u16; 10]),
    /// A route without a token: the status for an anonymous caller.
    Public(u16),
}

/// One case of one route: `"METHOD /path"`, what it acts on, its body (with
/// `{{OWN_ACCOUNT}}`, `{{PEER_ACCOUNT}}`, `{{OWN_USER_ID}}`, `{{OWN_EMAIL}}`,
/// `{{EXTRA_USER_ID}}` (a member who is none of the columns), `{{N}}` filled
/// in), and the expected statuses. A path's `{user_id}` is `peer`'s id, its
/// `{seq}` 1, its `{media_id}` the fixture's upload.
struct Row {
    route: &'static str,
    fixture: Fixture,
    body: Option<&'static str>,
    expect: Expect,
}

const fn row(route: &'static str, fixture: Fixture, body: Option<&'static str>, expect: [u16; 10]) -> Row {
    Row { route, fixture, body, expect: Expect::Each(expect) }
}

const fn public(route: &'static str, body: Option<&'static str>, status: u16) -> Row {
    Row { route, fixture: Fixture::None, body, expect: Expect::Public(status) }
}

use Fixture as F;

const PAY: &str = r#"{"amount": 100, "currency": "USD", "payer_account_id": "{{OWN_ACCOUNT}}", "payee_account_id": "{{PEER_ACCOUNT}}"}"#;
const REGISTER: &str = r#"{"tenant_id": "acme", "email": "newcomer-{{N}}@acme.example", "password": "correct horse battery staple"}"#;
const LOGIN: &str =
    r#"{"tenant_id": "acme", "email": "{{OWN_EMAIL}}", "password": "correct horse battery staple"}"#;
const UNKNOWN_REFRESH: &str =
    r#"{"refresh_token": "rt1.acme.REPLACE_WITH_A_REFRESH_TOKEN_FROM_LOGIN_000000000"}"#;

const UNKNOWN_MFA: &str =
    r#"{"mfa_token": "mf1.acme.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "code": "123456"}"#;
const WRONG_PASSWORD: &str =
    r#"{"current_password": "not the password at all", "new_password": "another long password"}"#;
const DISABLE: &str = r#"{"password": "correct horse battery staple", "code": "000000"}"#;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    //                                                                                     anon  own peer other admin owner aud client c_aud foreign
    row("GET /v1/me", F::None, None,                                                      [401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST /v1/invitations", F::None, Some(r#"{"email": "i-{{N}}@x.example", "role": "member"}"#),
                                                                                          [401, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    row("POST /v1/clients", F::None, Some(r#"{"name": "c-{{N}}", "roles": ["member"]}"#),
                                                                                          [401, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    row("POST /v1/clients/{id}/secret", F::Client, None,                                  [401, 403, 403, 403, 200, 200, 403, 403, 403, 404]),
    row("DELETE /v1/clients/{id}", F::Client, None,                                       [401, 403, 403, 403, 204, 204, 403, 403, 403, 404]),
    row("GET /v1/users", F::None, None,                                                   [401, 403, 403, 403, 200, 200, 403, 403, 403, 200]),
    row("PATCH /v1/users/{id}", F::OtherUser, Some(r#"{"role": "member"}"#),              [401, 403, 403, 403, 200, 200, 403, 403, 403, 404]),
    row("GET /v1/audit/verify", F::None, None,                                            [401, 403, 403, 403, 200, 200, 200, 403, 200, 200]),
    row("GET /v1/audit/events", F::None, None,                                            [401, 403, 403, 403, 200, 200, 200, 403, 200, 200]),
    row("GET /v1/audit/export", F::None, None,                                            [401, 403, 403, 403, 200, 200, 200, 403, 200, 200]),
    row("POST /v1/consents", F::None, Some(r#"{"purpose": "marketing_email", "version": "1", "granted": true}"#),
                                                                                          [401, 201, 201, 201, 201, 201, 201, 403, 403, 201]),
    row("GET /v1/consents", F::None, None,                                                [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("POST /v1/accounts", F::None, Some(r#"{"currency": "USD"}"#),                     [401, 201, 201, 201, 201, 201, 201, 201, 201, 201]),
    row("POST /v1/accounts", F::None, Some(r#"{"currency": "USD", "allow_overdraft": true, "overdraft_limit": 1000}"#),
                                                                                          [401, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    row("POST /v1/accounts", F::None, Some(r#"{"currency": "USD", "owner": {"type": "tenant"}}"#),
                                                                                          [401, 403, 403, 403, 201, 201, 403, 403, 403, 201]),
    row("POST /v1/accounts", F::None, Some(r#"{"currency": "USD", "owner": {"type": "user", "id": "{{OWN_USER_ID}}"}}"#),
                                                                                          [401, 201, 403, 403, 201, 201, 403, 403, 403, 422]),
    row("GET /v1/accounts/{id}", F::OwnAccount, None,                                     [401, 200, 404, 404, 200, 200, 200, 404, 200, 404]),
    row("GET /v1/accounts/{id}", F::TenantAccount, None,                                  [401, 404, 404, 404, 200, 200, 200, 404, 200, 404]),
    row("PATCH /v1/accounts/{id}", F::OwnAccount, Some(r#"{"status": "active"}"#),         [401, 403, 403, 403, 200, 200, 403, 403, 403, 404]),
    row("GET /v1/accounts/{id}/balance", F::OwnAccount, None,                            [401, 200, 404, 404, 200, 200, 200, 404, 200, 404]),
    row("GET /v1/accounts/{id}/statement", F::OwnAccount, None,                          [401, 200, 404, 404, 200, 200, 200, 404, 200, 404]),
    row("GET /v1/accounts/{id}/transactions", F::OwnAccount, None,                        [401, 200, 404, 404, 200, 200, 200, 404, 200, 404]),
    row("POST /v1/payments", F::None, Some(PAY),                                          [401, 201, 404, 404, 201, 201, 403, 404, 403, 404]),
    row("POST /v1/payments/{id}/capture", F::Authorized, Some("{}"),                      [401, 200, 200, 404, 200, 200, 403, 404, 403, 404]),
    row("POST /v1/payments/{id}/void", F::Authorized, Some("{}"),                         [401, 200, 200, 404, 200, 200, 403, 404, 403, 404]),
    row("POST /v1/payments/{id}/refunds", F::Captured, Some(r#"{"amount": 10}"#),         [401, 403, 201, 404, 201, 201, 403, 404, 403, 404]),
    row("GET /v1/payments/{id}", F::Authorized, None,                                     [401, 200, 200, 404, 200, 200, 200, 404, 200, 404]),
    // Chat: `own` is the conversation's admin, `peer` a participant; tenant owners and
    // admins manage participants and delete messages without being participants.
    row("POST /v1/conversations", F::None, Some(r#"{"type": "group", "title": "t", "participants": ["{{EXTRA_USER_ID}}"]}"#),
                                                                                          [401, 201, 201, 201, 201, 201, 201, 403, 403, 422]),
    row("GET /v1/conversations", F::None, None,                                           [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("GET /v1/conversations/{id}", F::Conversation, None,                              [401, 200, 200, 404, 404, 404, 404, 403, 403, 404]),
    row("GET /v1/conversations/{id}/presence", F::Conversation, None,                     [401, 200, 200, 404, 404, 404, 404, 403, 403, 404]),
    row("POST /v1/conversations/{id}/participants", F::Conversation, Some(r#"{"user_ids": ["{{EXTRA_USER_ID}}"]}"#),
                                                                                          [401, 200, 403, 404, 200, 200, 404, 403, 403, 404]),
    row("DELETE /v1/conversations/{id}/participants/{user_id}", F::Conversation, None,    [401, 204, 204, 404, 204, 204, 404, 403, 403, 404]),
    row("POST /v1/conversations/{id}/leave", F::Conversation, None,                       [401, 204, 204, 404, 404, 404, 404, 403, 403, 404]),
    row("POST /v1/conversations/{id}/messages", F::Conversation, Some(r#"{"client_message_id": "m-{{N}}", "body": "hi"}"#),
                                                                                          [401, 201, 201, 404, 404, 404, 404, 403, 403, 404]),
    row("GET /v1/conversations/{id}/messages", F::Conversation, None,                     [401, 200, 200, 404, 404, 404, 404, 403, 403, 404]),
    row("PATCH /v1/conversations/{id}/messages/{seq}", F::Message, Some(r#"{"body": "edited"}"#),
                                                                                          [401, 204, 403, 404, 404, 404, 404, 403, 403, 404]),
    row("DELETE /v1/conversations/{id}/messages/{seq}", F::Message, None,                 [401, 204, 403, 404, 204, 204, 404, 403, 403, 404]),
    row("POST /v1/conversations/{id}/read", F::Message, Some(r#"{"seq": 1}"#),            [401, 200, 200, 404, 404, 404, 404, 403, 403, 404]),
    // Media: `own` uploaded it; `peer` sees it; tenant owners and admins delete it (moderation).
    row("POST /v1/conversations/{id}/media", F::Conversation, Some(r#"{"content_type": "image/png", "size": 10}"#),
                                                                                          [401, 201, 201, 404, 404, 404, 404, 403, 403, 404]),
    row("POST /v1/conversations/{id}/media/{media_id}/complete", F::Media, None,          [401, 200, 403, 404, 404, 404, 404, 403, 403, 404]),
    row("GET /v1/conversations/{id}/media/{media_id}", F::Media, None,                    [401, 200, 200, 404, 404, 404, 404, 403, 403, 404]),
    row("DELETE /v1/conversations/{id}/media/{media_id}", F::Media, None,                 [401, 204, 403, 404, 204, 204, 404, 403, 403, 404]),
    // Searches find what the caller may see (a foreign admin: their own tenant's); people only.
    row("GET /v1/search/messages", F::None, None,                                         [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("GET /v1/search/conversations", F::None, None,                                    [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("GET /v1/search/users", F::None, None,                                            [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    public("POST /v1/users", Some(REGISTER), 201),
    public("POST /v1/auth/login", Some(LOGIN), 200),
    public("POST /v1/auth/refresh", Some(UNKNOWN_REFRESH), 401),
    public("POST /v1/auth/logout", Some(UNKNOWN_REFRESH), 204),
    public("GET /.well-known/jwks.json", None, 200),
    public("GET /.well-known/audit-keys.json", None, 200),
    // The matrix sends JSON; the token endpoint takes only a form body (RFC 6749
    // invalid_request). Its client authentication is tested in tests/clients.rs.
    public("POST /v1/oauth/token", Some("grant_type=client_credentials"), 400),
    public("POST /v1/auth/mfa", Some(UNKNOWN_MFA), 401),
    // The caller's own sessions and second factor: users only. Nobody has a
    // second factor here, so the rows before enrolment answer 409.
    row("GET /v1/sessions", F::None, None,                                                [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("DELETE /v1/sessions/{id}", F::Unknown, None,                                     [401, 404, 404, 404, 404, 404, 404, 403, 403, 404]),
    row("POST /v1/auth/password", F::None, Some(WRONG_PASSWORD),                          [401, 403, 403, 403, 403, 403, 403, 403, 403, 403]),
    row("POST /v1/mfa/totp/confirm", F::None, Some(r#"{"code": "000000"}"#),              [401, 409, 409, 409, 409, 409, 409, 403, 403, 409]),
    row("POST /v1/mfa/totp/disable", F::None, Some(DISABLE),                              [401, 409, 409, 409, 409, 409, 409, 403, 403, 409]),
    row("POST /v1/mfa/recovery-codes", F::None, None,                                     [401, 409, 409, 409, 409, 409, 409, 403, 403, 409]),
    row("POST /v1/mfa/totp", F::None, None,                                               [401, 200, 200, 200, 200, 200, 200, 403, 403, 200]),
    row("DELETE /v1/users/{id}/mfa", F::OtherUser, None,                                  [401, 403, 403, 403, 204, 204, 403, 403, 403, 404]),
    row("DELETE /v1/users/{id}", F::Unknown, None,                                        [401, 403, 403, 403, 404, 404, 403, 403, 403, 404]),
    // The person themselves (`other`) or an owner or admin.
    row("GET /v1/users/{id}/export", F::OtherUser, None,                                  [401, 403, 403, 200, 200, 200, 403, 403, 403, 404]),
    // Last: it ends every session of each caller.
    row("POST /v1/auth/logout-all", F::None, None,                                        [401, 204, 204, 204, 204, 204, 204, 403, 403, 204]),
];

/// The principals' tokens and the standing resources.
struct World {
    tokens: HashMap<Who, String>,
    values: HashMap<&'static str, String>,
}

async fn world(stack: &TestStack, api: &Api<'_>) -> World {
    let own = api.token("acme", "own@acme.example").await;
    let peer = api.token("acme", "peer@acme.example").await;
    let other = api.token("acme", "other@acme.example").await;
    let owner = api.treasurer("acme").await;
    let tokens = HashMap::from([
        (Own, own.clone()),
        (Peer, peer.clone()),
        (Other, other.clone()),
        (Admin, api.invited("acme", "admin@acme.example", Role::Admin).await),
        (Owner, owner.clone()),
        (Auditor, api.invited("acme", "auditor@acme.example", Role::Auditor).await),
        (Client, client_token(stack, "acme", Role::Member).await),
        (ClientAuditor, client_token(stack, "acme", Role::Auditor).await),
        (Foreign, api.invited("globex", "admin@globex.example", Role::Admin).await),
    ]);
    let own_account = api.account(&own, "USD", false).await;
    api.fund(&own, &own_account, 1_000_000_000, "USD").await;
    let key = uuid::Uuid::new_v4().to_string();
    let tenant_owned = serde_json::json!({"currency": "USD", "owner": {"type": "tenant"}});
    let created =
        api.post("CreateAccountFunction", "/v1/accounts", None, &owner, Some(&key), &tenant_owned).await;
    let sub = |token: &str| caas_tests::api::claims(token)["sub"].as_str().unwrap().to_owned();
    let values = HashMap::from([
        ("OWN_ACCOUNT", own_account),
        ("PEER_ACCOUNT", api.account(&peer, "USD", false).await),
        ("TENANT_ACCOUNT", parts(&created).1["account_id"].as_str().unwrap().to_owned()),
        ("OWN_USER_ID", sub(&own)),
        ("OTHER_USER_ID", sub(&other)),
        ("OWN_EMAIL", "own@acme.example".to_owned()),
        ("PEER_USER_ID", sub(&peer)),
        ("EXTRA_USER_ID", sub(&api.token("acme", "extra@acme.example").await)),
    ]);
    World { tokens, values }
}

/// The `{id}` of a cell: standing resources, or a payment made for it.
async fn fixture_id(api: &Api<'_>, world: &World, fixture: Fixture) -> Option<String> {
    let (own, values) = (&world.tokens[&Own], &world.values);
    let payment = || async {
        let authorized =
            api.authorize(own, &values["OWN_ACCOUNT"], &values["PEER_ACCOUNT"], 100, "USD").await;
        let (status, body) = parts(&authorized);
        assert_eq!(status, 201, "fixture payment: {body}");
        body["payment_id"].as_str().unwrap().to_owned()
    };
    Some(match fixture {
        F::None => return None,
        F::OwnAccount => values["OWN_ACCOUNT"].clone(),
        F::TenantAccount => values["TENANT_ACCOUNT"].clone(),
        F::OtherUser => values["OTHER_USER_ID"].clone(),
        F::Unknown => uuid::Uuid::new_v4().to_string(),
        F::Client => {
            let body = serde_json::json!({"name": "fixture", "roles": ["member"]});
            let created = api
                .post("CreateClientFunction", "/v1/clients", None, &world.tokens[&Owner], None, &body)
                .await;
            let (status, body) = parts(&created);
            assert_eq!(status, 201, "fixture client: {body}");
            body["client_id"].as_str().unwrap().to_owned()
        }
        F::Media => {
            let conversation = Box::pin(fixture_id(api, world, F::Conversation)).await?;
            let body = serde_json::json!({"content_type": "text/plain", "size": 5});
            // Every cell makes one: beyond one principal's upload limit in a window.
            let app = api.stack.app_with("RequestUploadFunction", &[("RATE_LIMIT_UPLOADS", "1000/3600")]);
            let bearer = format!("Bearer {own}");
            let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
            let params = [("id", conversation.as_str())];
            let body = body.to_string();
            let request =
                api_event("POST", "/v1/conversations/{id}/media", &params, &[], &headers, Some(&body));
            let requested = caas_tests::api::dispatch(&app, "RequestUploadFunction", request).await;
            let (status, ticket) = parts(&requested);
            assert_eq!(status, 201, "fixture upload: {ticket}");
            assert_eq!(send_presigned(&ticket["upload"], b"hello".to_vec()).await, 200, "fixture upload");
            format!("{conversation}/{}", ticket["media_id"].as_str().unwrap())
        }
        F::Conversation | F::Message => {
            let body = serde_json::json!({"type": "group", "title": "fixture", "participants": [values["PEER_USER_ID"]]});
            let created =
                api.post("CreateConversationFunction", "/v1/conversations", None, own, None, &body).await;
            let (status, body) = parts(&created);
            assert_eq!(status, 201, "fixture conversation: {body}");
            let id = body["conversation_id"].as_str().unwrap().to_owned();
            if fixture == F::Message {
                let message =
                    serde_json::json!({"client_message_id": caas::ids::new_id(), "body": "fixture"});
                let posted = api
                    .post(
                        "PostMessageFunction",
                        "/v1/conversations/{id}/messages",
                        Some(&id),
                        own,
                        None,
                        &message,
                    )
                    .await;
                assert_eq!(posted.status(), 201, "fixture message: {:?}", parts(&posted).1);
            }
            id
        }
        F::Authorized => payment().await,
        F::Captured => {
            let id = payment().await;
            assert_eq!(Box::pin(api.capture(own, &id, None)).await.status(), 200, "fixture capture");
            id
        }
    })
}

/// One cell: the row's request as `who`.
async fn call(api: &Api<'_>, world: &World, function: &str, row: &Row, who: Who, n: usize) -> Response<Body> {
    let (method, path) = row.route.split_once(' ').expect("METHOD /path");
    let id = fixture_id(api, world, row.fixture).await;
    // A media fixture is `<conversation id>/<media id>`.
    let (id, media_id) = match id.as_deref().and_then(|id| id.split_once('/')) {
        Some((conversation, media)) => (Some(conversation.to_owned()), Some(media.to_owned())),
        None => (id, None),
    };
    let mut params: Vec<(&str, &str)> = id.as_deref().map(|id| vec![("id", id)]).unwrap_or_default();
    if let Some(media_id) = media_id.as_deref() {
        params.push(("media_id", media_id));
    }
    if path.contains("{user_id}") {
        params.push(("user_id", world.values["PEER_USER_ID"].as_str()));
    }
    if path.contains("{seq}") {
        params.push(("seq", "1"));
    }
    let body = row.body.map(|body| {
        world.values.iter().fold(body.replace("{{N}}", &n.to_string()), |text, (name, value)| {
            text.replace(&format!("{{{{{name}}}}}"), value)
        })
    });
    let bearer = world.tokens.get(&who).map(|token| format!("Bearer {token}"));
    let key = uuid::Uuid::new_v4().to_string();
    let mut headers = vec![("content-type", "application/json"), ("idempotency-key", key.as_str())];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    // A search needs its `q`.
    let query: &[(&str, &str)] = if path.starts_with("/v1/search/") { &[("q", "hi")] } else { &[] };
    let request = api_event(method, path, &params, query, &headers, body.as_deref());
    Box::pin(api.call(function, request)).await
}

#[test]
fn every_template_route_has_rows_and_every_row_a_route() {
    let template = caas_local::Template::load(repo_root().join("template.yaml")).unwrap();
    let served: BTreeSet<String> = template
        .http_routes()
        .into_iter()
        .map(|r| format!("{} {}", r.method.to_uppercase(), r.path))
        .collect();
    let covered: BTreeSet<String> = ROWS.iter().map(|row| row.route.to_owned()).collect();
    let missing: Vec<&String> = served.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes of template.yaml without a row in the authorization matrix: {missing:?}"
    );
    let unknown: Vec<&String> = covered.difference(&served).collect();
    assert!(unknown.is_empty(), "rows for routes template.yaml does not serve: {unknown:?}");
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_access_model_says() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let world = Box::pin(world(&stack, &api)).await;
    let template = caas_local::Template::load(repo_root().join("template.yaml")).unwrap();
    let functions: HashMap<String, String> = template
        .http_routes()
        .into_iter()
        .map(|r| (format!("{} {}", r.method.to_uppercase(), r.path), r.function_logical_id))
        .collect();
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for row in ROWS {
        let function =
            functions.get(row.route).unwrap_or_else(|| panic!("{} is not a template route", row.route));
        let expected: Vec<(Who, u16)> = match row.expect {
            Expect::Each(statuses) => COLUMNS.into_iter().zip(statuses).collect(),
            Expect::Public(status) => vec![(Anon, status)],
        };
        for (who, status) in expected {
            cells += 1;
            let response = call(&api, &world, function, row, who, cells).await;
            let (actual, body) = parts(&response);
            if actual != status {
                mismatches.push(format!(
                    "{} {:?} as {who:?}: {actual}, expected {status}: {body}",
                    row.route, row.body
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
