//! Machine clients against the emulator: their administration by owners and
//! admins (create, rotate, revoke), secrets shown once and stored hashed,
//! and the OAuth 2.0 token endpoint driven by the `oauth2` crate over a real
//! loopback HTTP listener, with its refusals, the rotation grace period, a
//! suspended tenant and round trips counted.

use caas::clock::Clock;
use caas_local::http::{ClientResponse, request as http_request};
use caas_tests::api::{Api, PASSWORD, api_event};
use caas_tests::http_server::HttpApi;
use caas_tests::*;
use lambda_http::{Body, Response};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::{Value, json};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn call(api: &Api<'_>, function: &str, request: lambda_http::Request) -> Response<Body> {
    Box::pin(api.call(function, request)).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Registers with `invitation` and logs in; returns (user id, access token).
async fn join(api: &Api<'_>, tenant: &str, email: &str, invitation: &str) -> (String, String) {
    let credentials = json!({"tenant_id": tenant, "email": email, "password": PASSWORD});
    let mut registration = credentials.clone();
    registration["invitation"] = invitation.into();
    let request = api_event("POST", "/v1/users", &[], &[], &[], Some(&registration.to_string()));
    let (status, user) = parts(&call(api, "RegisterFunction", request).await);
    assert_eq!(status, 201, "{user}");
    let request = api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&credentials.to_string()));
    let (status, tokens) = parts(&call(api, "LoginFunction", request).await);
    assert_eq!(status, 200, "{tokens}");
    (user["user_id"].as_str().unwrap().to_owned(), tokens["access_token"].as_str().unwrap().to_owned())
}

/// A user of `role` invited by `inviter` into `tenant`, logged in: their access token.
async fn user_with_role(api: &Api<'_>, inviter: &str, tenant: &str, role: &str) -> String {
    let email = format!("{role}@{tenant}.example");
    let auth = bearer(inviter);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = json!({"email": email, "role": role}).to_string();
    let request = api_event("POST", "/v1/invitations", &[], &[], &headers, Some(&body));
    let (status, invitation) = parts(&call(api, "CreateInvitationFunction", request).await);
    assert_eq!(status, 201, "{invitation}");
    join(api, tenant, &email, invitation["token"].as_str().unwrap()).await.1
}

/// A new tenant (as the operator creates it) and its owner: (owner id, token).
async fn tenant_with_owner(stack: &TestStack, api: &Api<'_>, tenant: &str) -> (String, String) {
    let invitation = open_tenant(stack, tenant).await.expect("a new tenant");
    join(api, tenant, &invitation.email, &invitation.token).await
}

/// A new tenant `acme` with its owner (logged in), one client of theirs and
/// the HTTP API.
struct Acme<'a> {
    api: Api<'a>,
    owner: String,
    client_id: String,
    secret: String,
    server: HttpApi,
}

async fn acme<'a>(stack: &'a TestStack, roles: &[&str]) -> Acme<'a> {
    let api = Api::new(stack);
    let (_, owner) = tenant_with_owner(stack, &api, "acme").await;
    let (client_id, secret) = new_client(&api, &owner, roles).await;
    let server = HttpApi::start(stack).await;
    Acme { api, owner, client_id, secret, server }
}

async fn create_client(api: &Api<'_>, token: &str, body: &Value) -> Response<Body> {
    let auth = bearer(token);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let request = api_event("POST", "/v1/clients", &[], &[], &headers, Some(&body.to_string()));
    call(api, "CreateClientFunction", request).await
}

/// Creates a client with `roles`; returns (client id, secret).
async fn new_client(api: &Api<'_>, token: &str, roles: &[&str]) -> (String, String) {
    let (status, client) =
        parts(&create_client(api, token, &json!({"name": "billing backend", "roles": roles})).await);
    assert_eq!(status, 201, "{client}");
    (client["client_id"].as_str().unwrap().to_owned(), client["client_secret"].as_str().unwrap().to_owned())
}

async fn rotate(api: &Api<'_>, token: &str, client_id: &str) -> Response<Body> {
    let auth = bearer(token);
    let request = api_event(
        "POST",
        "/v1/clients/{id}/secret",
        &[("id", client_id)],
        &[],
        &[("authorization", &auth)],
        None,
    );
    call(api, "RotateClientSecretFunction", request).await
}

async fn revoke(api: &Api<'_>, token: &str, client_id: &str) -> Response<Body> {
    let auth = bearer(token);
    let request =
        api_event("DELETE", "/v1/clients/{id}", &[("id", client_id)], &[], &[("authorization", &auth)], None);
    call(api, "RevokeClientFunction", request).await
}

/// A token request with a form body, over HTTP.
async fn token_request(server: &HttpApi, headers: &[(&str, &str)], body: &str) -> ClientResponse {
    let url = server.url("/v1/oauth/token");
    http_request("POST", &url, headers, body.to_owned()).await.expect("the token endpoint answers")
}

/// Body authentication, over HTTP.
async fn token_for(server: &HttpApi, client_id: &str, secret: &str) -> ClientResponse {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .finish();
    token_request(server, &[FORM], &body).await
}

/// Asserts an RFC 6749 §5.2 error answer; returns its body.
fn assert_oauth_error(response: &ClientResponse, status: u16, error: &str) -> Value {
    let body = response.json();
    assert_eq!((response.status, body["error"].as_str()), (status, Some(error)), "{body}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(body["error_description"].is_string());
    body
}

/// The `oauth2` crate's HTTP client: one request on the local servers' hyper client.
async fn oauth_http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, caas_local::http::ClientError> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let url = request.uri().to_string();
    let answer = http_request(request.method().as_str(), &url, &headers, request.body().clone()).await?;
    let mut response = http::Response::new(answer.body.to_vec());
    *response.status_mut() =
        http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    *response.headers_mut() = answer.headers;
    Ok(response)
}

type OAuthResult = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<caas_local::http::ClientError, oauth2::basic::BasicErrorResponse>,
>;

/// The client-credentials flow of the `oauth2` crate, unchanged.
async fn oauth2_token(
    server: &HttpApi,
    id: &str,
    secret: &str,
    auth: AuthType,
    scopes: &[&str],
) -> OAuthResult {
    let client = BasicClient::new(ClientId::new(id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_auth_type(auth)
        .set_token_uri(TokenUrl::new(server.url("/v1/oauth/token")).expect("a token URL"));
    let mut request = client.exchange_client_credentials();
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    request.request_async(&oauth_http).await
}

fn server_error(result: OAuthResult) -> BasicErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(error)) => error.error().clone(),
        Err(other) => panic!("not an OAuth error answer: {other:?}"),
        Ok(_) => panic!("a token was issued"),
    }
}

/// The claims of an access token (the functions check its signature).
fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let part = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn me_over_http(server: &HttpApi, token: &str) -> ClientResponse {
    let auth = bearer(token);
    http_request("GET", &server.url("/v1/me"), &[("authorization", &auth)], "").await.expect("GET /v1/me")
}

/// Every stored client entry (kind `client`).
async fn stored_clients(stack: &TestStack) -> Vec<serde_json::Map<String, Value>> {
    scan_items(stack, "kind = :client", &[(":client", "client")]).await
}

/// The tenant's outbox events of `type` (oldest first).
async fn events_of(stack: &TestStack, tenant: &str, event_type: &str) -> Vec<caas::outbox::OutboxEvent> {
    stored_events(stack, tenant).await.into_iter().filter(|e| e.event_type == event_type).collect()
}

async fn set_tenant_status(stack: &TestStack, tenant: &str, to: caas::store::tenants::TenantStatus) {
    let app = stack.app("TenantsFunction");
    caas::access::tenants::set_status(&app, SETUP_CORRELATION_ID, tenant, to).await.expect("status changed");
}

#[tokio::test]
async fn owners_and_admins_administer_clients_whose_secrets_are_shown_once() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let (owner_id, owner) = tenant_with_owner(&stack, &api, "acme").await;
    let admin = user_with_role(&api, &owner, "acme", "admin").await;
    let member = user_with_role(&api, &owner, "acme", "member").await;
    let auditor = user_with_role(&api, &owner, "acme", "auditor").await;

    // Created by the owner: one transaction (the token key is already cached).
    create_client(&api, &owner, &json!({"name": "warm-up", "roles": ["member"]})).await;
    stack.round_trips.reset();
    let response =
        create_client(&api, &owner, &json!({"name": " Billing ", "roles": ["member", "auditor"]})).await;
    let (status, created) = parts(&response);
    assert_eq!(status, 201, "{created}");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["TransactWriteItems"]);
    assert!(stack.round_trips.operations("kms").is_empty());
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(caas::ids::is_valid_id(&client_id));
    assert!(secret.starts_with("cs1.acme.") && secret.len() >= 9 + 43, "256 random bits: {secret}");
    assert_eq!((created["name"].as_str(), created["tenant_id"].as_str()), (Some("Billing"), Some("acme")));
    assert_eq!(created["roles"], json!(["member", "auditor"]));

    // Stored hashed: the entry has the SHA-256 of the secret, and the secret is nowhere.
    let entries = stored_clients(&stack).await;
    let entry = entries.iter().find(|e| e["client_id"] == client_id.as_str()).expect("the entry");
    assert_eq!(entry["pk"], "T#acme#MEMBERS");
    assert_eq!(entry["sk"], format!("CLIENT#{client_id}").as_str());
    assert_eq!(entry["secret_hash"], caas::auth::opaque_token::hash(&secret).as_str());
    let scan = stack.clients.dynamodb.scan().table_name(stack.table()).send().await.unwrap();
    let everything = format!("{:?}", scan.items());
    assert!(!everything.contains(&secret) && !everything.contains(secret.rsplit('.').next().unwrap()));

    // An admin may create admins' clients, never an owner's; members and auditors nothing.
    let (status, by_admin) =
        parts(&create_client(&api, &admin, &json!({"name": "ops", "roles": ["admin"]})).await);
    assert_eq!((status, by_admin["roles"].clone()), (201, json!(["admin"])));
    for roles in [json!(["owner"]), json!(["member", "owner"]), json!([]), json!(["root"])] {
        let body =
            assert_problem(&create_client(&api, &admin, &json!({"name": "x", "roles": roles})).await, 400);
        assert_eq!(body["field"], "roles", "{roles}");
    }
    let owner_client = json!({"name": "x", "roles": ["owner"]});
    assert_eq!(assert_problem(&create_client(&api, &owner, &owner_client).await, 400)["field"], "roles");
    for (body, field) in [
        (json!({"name": "", "roles": ["member"]}), "name"),
        (json!({"roles": ["member"]}), "name"),
        (json!({"name": "x", "roles": ["member"], "secret": "mine"}), "secret"),
    ] {
        assert_eq!(assert_problem(&create_client(&api, &owner, &body).await, 400)["field"], field, "{body}");
    }
    for token in [&member, &auditor] {
        assert_problem(&create_client(&api, token, &json!({"name": "x", "roles": ["member"]})).await, 403);
        assert_problem(&rotate(&api, token, &client_id).await, 403);
        assert_problem(&revoke(&api, token, &client_id).await, 403);
    }
    assert_problem(
        &create_client(&api, "not-a-token", &json!({"name": "x", "roles": ["member"]})).await,
        401,
    );

    // Rotation by an admin: one transaction, a new secret shown once.
    stack.round_trips.reset();
    let response = rotate(&api, &admin, &client_id).await;
    let (status, rotated) = parts(&response);
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["TransactWriteItems"]);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_expires_at"].is_string());

    // Another tenant's client, an unknown one, a malformed id: not found.
    let (_, globex_owner) = tenant_with_owner(&stack, &api, "globex").await;
    assert_problem(&rotate(&api, &globex_owner, &client_id).await, 404);
    assert_problem(&revoke(&api, &globex_owner, &client_id).await, 404);
    assert_problem(&rotate(&api, &owner, &caas::ids::new_id()).await, 404);
    assert_problem(&revoke(&api, &owner, "../etc").await, 404);

    // Revocation by the owner: one transaction; again, or rotating it, not found.
    stack.round_trips.reset();
    assert_eq!(revoke(&api, &owner, &client_id).await.status(), 204);
    assert_eq!(stack.round_trips.operations("dynamodb"), ["TransactWriteItems"]);
    assert_problem(&revoke(&api, &owner, &client_id).await, 404);
    assert_problem(&rotate(&api, &admin, &client_id).await, 404);
    let entries = stored_clients(&stack).await;
    let entry = entries.iter().find(|e| e["client_id"] == client_id.as_str()).unwrap();
    assert_eq!(entry["status"], "revoked");
    assert!(entry.get("secret_hash").is_none() && entry.get("previous_secret_hash").is_none());

    // The events name their actor and carry no secret or hash.
    let created = events_of(&stack, "acme", "client.created").await;
    let ours = created.iter().find(|e| e.aggregate_id == client_id).unwrap();
    assert_eq!(
        ours.payload,
        json!({"client_id": client_id, "name": "Billing", "roles": ["member", "auditor"], "actor": {"type": "user", "id": owner_id}})
    );
    let rotated_events = events_of(&stack, "acme", "client.secret_rotated").await;
    assert_eq!(rotated_events.len(), 1);
    assert_eq!(
        rotated_events[0].payload["previous_secret_expires_at"],
        rotated["previous_secret_expires_at"]
    );
    assert_eq!(
        events_of(&stack, "acme", "client.revoked").await[0].payload["actor"]["id"],
        owner_id.as_str()
    );
    for event in created.iter().chain(&rotated_events) {
        let text = event.payload.to_string();
        assert!(!text.contains("cs1.") && !text.contains(&caas::auth::opaque_token::hash(&secret)), "{text}");
    }
    let logs = captured_logs();
    assert!(!logs.contains(&secret) && !logs.contains(new_secret), "a secret reached the logs");
}

#[tokio::test]
async fn the_oauth2_crate_gets_tokens_over_http_with_basic_and_body_authentication() {
    let stack = TestStack::new().await;
    let Acme { api, owner, client_id, secret, server } = acme(&stack, &["member", "auditor"]).await;

    // HTTP Basic (the crate's default): one BatchGetItem and one Sign.
    stack.round_trips.reset();
    let token = oauth2_token(&server, &client_id, &secret, AuthType::BasicAuth, &[]).await.expect("a token");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["BatchGetItem"]);
    assert_eq!(stack.round_trips.operations("kms"), ["Sign"]);
    assert_eq!(*token.token_type(), oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(900)));
    assert!(token.refresh_token().is_none(), "no refresh token (RFC 6749 §4.4.3)");
    let scopes: Vec<&str> = token.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["member", "auditor"]);
    let access = token.access_token().secret().clone();
    let issued = claims(&access);
    assert_eq!(
        (issued["sub"].as_str(), issued["client_id"].as_str()),
        (Some(client_id.as_str()), Some(client_id.as_str()))
    );
    assert_eq!(
        (issued["tenant"].as_str(), issued["roles"].clone()),
        (Some("acme"), json!(["member", "auditor"]))
    );

    // The token works on the API as the client.
    let me = me_over_http(&server, &access).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        json!({"id": client_id, "kind": "client", "tenant_id": "acme", "roles": ["member", "auditor"]})
    );

    // Body authentication, and a scope narrowing the roles.
    let token = oauth2_token(&server, &client_id, &secret, AuthType::RequestBody, &["auditor"])
        .await
        .expect("a token");
    assert_eq!(claims(token.access_token().secret())["roles"], json!(["auditor"]));
    let me = me_over_http(&server, token.access_token().secret()).await.json();
    assert_eq!(me["roles"], json!(["auditor"]));

    // Refusals the crate reports as the server's OAuth errors.
    let wrong = format!("cs1.acme.{}", "A".repeat(43));
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let refused = server_error(oauth2_token(&server, &client_id, &wrong, auth.clone(), &[]).await);
        assert_eq!(refused, BasicErrorResponseType::InvalidClient);
    }
    let refused =
        server_error(oauth2_token(&server, &client_id, &secret, AuthType::BasicAuth, &["admin"]).await);
    assert_eq!(refused, BasicErrorResponseType::InvalidScope);
    let refused =
        server_error(oauth2_token(&server, &client_id, &secret, AuthType::BasicAuth, &["owner"]).await);
    assert_eq!(refused, BasicErrorResponseType::InvalidScope);
    let unknown = caas::ids::new_id();
    let refused = server_error(oauth2_token(&server, &unknown, &secret, AuthType::BasicAuth, &[]).await);
    assert_eq!(refused, BasicErrorResponseType::InvalidClient);

    // Revoked: invalid_client at once.
    assert_eq!(revoke(&api, &owner, &client_id).await.status(), 204);
    let refused = server_error(oauth2_token(&server, &client_id, &secret, AuthType::BasicAuth, &[]).await);
    assert_eq!(refused, BasicErrorResponseType::InvalidClient);
    // Its access tokens run out within their lifetime.
    assert_eq!(me_over_http(&server, &access).await.status, 200);
    stack.clock.advance(time::Duration::seconds(900));
    assert_eq!(me_over_http(&server, &access).await.status, 401);
    assert!(!captured_logs().contains(&secret), "the secret reached the logs");
}

#[tokio::test]
async fn the_token_endpoint_answers_rfc_6749_errors_and_never_fails() {
    use base64::Engine;
    let stack = TestStack::new().await;
    let Acme { client_id, secret, server, .. } = acme(&stack, &["member"]).await;
    let basic = |id: &str, secret: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    };
    let good = basic(&client_id, &secret);

    let ok = token_request(&server, &[FORM, ("authorization", &good)], "grant_type=client_credentials").await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
    assert_eq!((ok.header("cache-control"), ok.header("pragma")), (Some("no-store"), Some("no-cache")));
    assert_eq!(ok.json()["token_type"], "Bearer");

    let unsupported = token_request(&server, &[FORM, ("authorization", &good)], "grant_type=password").await;
    assert_oauth_error(&unsupported, 400, "unsupported_grant_type");
    let missing = token_request(&server, &[FORM, ("authorization", &good)], "scope=member").await;
    assert_oauth_error(&missing, 400, "invalid_request");
    let json_body = token_request(
        &server,
        &[("content-type", "application/json"), ("authorization", &good)],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await;
    assert_oauth_error(&json_body, 400, "invalid_request");
    let repeated = "grant_type=client_credentials&grant_type=client_credentials";
    assert_oauth_error(
        &token_request(&server, &[FORM, ("authorization", &good)], repeated).await,
        400,
        "invalid_request",
    );
    let both = format!("grant_type=client_credentials&client_secret={secret}");
    assert_oauth_error(
        &token_request(&server, &[FORM, ("authorization", &good)], &both).await,
        400,
        "invalid_request",
    );
    let scope = "grant_type=client_credentials&scope=member%20admin";
    assert_oauth_error(
        &token_request(&server, &[FORM, ("authorization", &good)], scope).await,
        400,
        "invalid_scope",
    );

    // invalid_client: 401 with a Basic challenge, whatever was wrong.
    let wrong_secret = basic(&client_id, &format!("cs1.acme.{}", "B".repeat(43)));
    let other_tenant = basic(&client_id, &secret.replace("cs1.acme.", "cs1.globex."));
    let not_ours = "x".repeat(5000);
    for authorization in [
        wrong_secret.as_str(),
        other_tenant.as_str(),
        "Basic !!!not base64",
        "Basic",
        "Bearer abc",
        &basic("", ""),
        &basic(&client_id, ""),
        &basic("not-a-uuid", &secret),
        &basic(&client_id, &not_ours),
    ] {
        let refused = token_request(
            &server,
            &[FORM, ("authorization", authorization)],
            "grant_type=client_credentials",
        )
        .await;
        assert_oauth_error(&refused, 401, "invalid_client");
        assert!(
            refused.header("www-authenticate").is_some_and(|c| c.starts_with("Basic ")),
            "{authorization}"
        );
    }
    let no_auth = token_request(&server, &[FORM], "grant_type=client_credentials").await;
    assert_oauth_error(&no_auth, 401, "invalid_client");
    let id_only = format!("grant_type=client_credentials&client_id={client_id}");
    assert_oauth_error(&token_request(&server, &[FORM], &id_only).await, 401, "invalid_client");

    // Garbage is refused, never a 500.
    for body in ["%%%", "&&&=", "grant_type=%FF%FE", &"a=b&".repeat(20_000), "\u{0}"] {
        let response = token_request(&server, &[FORM, ("authorization", &good)], body).await;
        assert!((400..500).contains(&response.status), "{body:.40}: {}", response.status);
        assert!(response.json()["error"].is_string());
    }
}

#[tokio::test]
async fn a_rotated_secret_works_for_the_grace_period_and_not_after() {
    let stack = TestStack::new().await;
    let Acme { api, owner, client_id, secret: first, server } = acme(&stack, &["member"]).await;

    let (status, rotated) = parts(&rotate(&api, &owner, &client_id).await);
    assert_eq!(status, 200);
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    // 24 hours by default (ClientSecretGraceSeconds).
    let until = caas::clock::rfc3339(stack.clock.now() + time::Duration::days(1));
    assert_eq!(rotated["previous_secret_expires_at"], until.as_str());

    // Rotating again ends the previous secret's grace at once: two secrets at most.
    let (other_id, other_first) = new_client(&api, &owner, &["member"]).await;
    let mut secrets = vec![other_first];
    for _ in 0..3 {
        let (status, rotated) = parts(&rotate(&api, &owner, &other_id).await);
        assert_eq!(status, 200, "{rotated}");
        secrets.push(rotated["client_secret"].as_str().unwrap().to_owned());
    }
    for (n, secret) in secrets.iter().enumerate() {
        let response = token_for(&server, &other_id, secret).await;
        assert_eq!(response.status, if n >= 2 { 200 } else { 401 }, "secret {n}: {:?}", response.json());
    }

    // The grace period, by the clock (access tokens expire meanwhile; the secrets do not).
    stack.clock.advance(time::Duration::seconds(86_399));
    assert_eq!(token_for(&server, &client_id, &first).await.status, 200, "the old secret, within the grace");
    assert_eq!(token_for(&server, &client_id, &second).await.status, 200);
    stack.clock.advance(time::Duration::seconds(1));
    assert_oauth_error(&token_for(&server, &client_id, &first).await, 401, "invalid_client");
    assert_eq!(token_for(&server, &client_id, &second).await.status, 200);
}

#[tokio::test]
async fn a_suspended_tenant_issues_no_tokens_and_changes_no_clients() {
    use caas::store::tenants::TenantStatus;
    let stack = TestStack::new().await;
    let Acme { api, owner, client_id, secret, server } = acme(&stack, &["member"]).await;

    set_tenant_status(&stack, "acme", TenantStatus::Suspended).await;
    stack.round_trips.reset();
    let refused =
        assert_oauth_error(&token_for(&server, &client_id, &secret).await, 403, "unauthorized_client");
    assert_eq!(refused["error_description"], "the tenant is suspended");
    assert_eq!(stack.round_trips.operations("dynamodb"), ["BatchGetItem"], "the tenant read with the client");
    assert!(stack.round_trips.operations("kms").is_empty(), "nothing signed");
    // Only a caller holding the secret learns of the suspension.
    let wrong = format!("cs1.acme.{}", "C".repeat(43));
    assert_oauth_error(&token_for(&server, &client_id, &wrong).await, 401, "invalid_client");
    let refused = server_error(oauth2_token(&server, &client_id, &secret, AuthType::BasicAuth, &[]).await);
    assert_eq!(refused, BasicErrorResponseType::UnauthorizedClient);
    // Administration is refused too (problem documents there).
    let body =
        assert_problem(&create_client(&api, &owner, &json!({"name": "x", "roles": ["member"]})).await, 403);
    assert_eq!(body["detail"], "the tenant is suspended");
    assert_problem(&rotate(&api, &owner, &client_id).await, 403);
    assert_problem(&revoke(&api, &owner, &client_id).await, 403);

    set_tenant_status(&stack, "acme", TenantStatus::Active).await;
    assert_eq!(token_for(&server, &client_id, &secret).await.status, 200);
}

#[tokio::test]
async fn an_admin_client_manages_clients_checked_on_its_stored_state() {
    let stack = TestStack::new().await;
    let Acme { api, owner, client_id: admin_id, secret: admin_secret, server } =
        acme(&stack, &["admin"]).await;
    let (member_id, member_secret) = new_client(&api, &owner, &["member"]).await;
    let admin = token_for(&server, &admin_id, &admin_secret).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = token_for(&server, &member_id, &member_secret).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A client with the admin role administers clients; events name it.
    let (created_id, _) = new_client(&api, &admin, &["auditor"]).await;
    let created = events_of(&stack, "acme", "client.created").await;
    let by_client = created.iter().find(|e| e.aggregate_id == created_id).unwrap();
    assert_eq!(by_client.payload["actor"], json!({"type": "client", "id": admin_id}));
    assert_problem(&create_client(&api, &member, &json!({"name": "x", "roles": ["member"]})).await, 403);
    let owner_client = json!({"name": "x", "roles": ["owner"]});
    assert_problem(&create_client(&api, &admin, &owner_client).await, 400);

    // It rotates its own secret (its role rides on its own entry's update).
    let (status, rotated) = parts(&rotate(&api, &admin, &admin_id).await);
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(token_for(&server, &admin_id, new_secret).await.status, 200);

    // Once the owner revokes it, its still-valid token changes nothing.
    assert_eq!(revoke(&api, &owner, &admin_id).await.status(), 204);
    let refused =
        assert_problem(&create_client(&api, &admin, &json!({"name": "x", "roles": ["member"]})).await, 403);
    assert_eq!(refused["detail"], "your current role does not allow this change");
    assert_problem(&revoke(&api, &admin, &created_id).await, 403);
    assert_problem(&rotate(&api, &admin, &admin_id).await, 404);
    assert_eq!(revoke(&api, &owner, &created_id).await.status(), 204);
}
