//! Calls the real handlers the way API Gateway would, one warm App per
//! function (like a Lambda container), with helpers for the common flows.

use crate::TestStack;
use caas::App;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const PASSWORD: &str = "correct horse battery staple";

/// An API Gateway HTTP API (v2) request with path parameters and a query.
pub fn api_event(
    method: &str,
    route: &str,
    path_params: &[(&str, &str)],
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let mut path = route.to_owned();
    for (name, value) in path_params {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "queryStringParameters": query.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "pathParameters": path_params.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "headers": headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests" },
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": format!("{method} {route}"), "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 1_795_564_800_000i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

/// An event of the WebSocket API as API Gateway sends it to a route's function.
pub fn ws_event(
    route: &str,
    connection_id: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let query: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let event = json!({
        "headers": headers.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "messageDirection": "IN",
            "extendedRequestId": "ext-1",
            "requestTime": "25/Nov/2026:00:00:00 +0000",
            "stage": "live",
            "connectedAt": 1_795_564_800_000i64,
            "requestTimeEpoch": 1_795_564_800_000i64,
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "domainName": "local.execute-api.localhost",
            "connectionId": connection_id,
            "apiId": "local"
        },
        "body": body,
        "isBase64Encoded": false
    });
    serde_json::from_value(event).expect("a WebSocket event")
}

/// Runs `request` through the handler of the HTTP function with this logical
/// id; `None` when there is no such HTTP function.
pub async fn try_dispatch(
    app: &App,
    function: &str,
    request: Request,
) -> Option<Result<Response<Body>, lambda_http::Error>> {
    // Each handler's future boxed: inline, the largest of them would sit in
    // every caller's future, and test threads have small stacks.
    Some(match function {
        "RegisterFunction" => Box::pin(register::handler(app, request)).await,
        "LoginFunction" => Box::pin(login::handler(app, request)).await,
        "RefreshFunction" => Box::pin(refresh::handler(app, request)).await,
        "LogoutFunction" => Box::pin(logout::handler(app, request)).await,
        "JwksFunction" => Box::pin(jwks::handler(app, request)).await,
        "CreateAccountFunction" => Box::pin(create_account::handler(app, request)).await,
        "GetAccountFunction" => Box::pin(get_account::handler(app, request)).await,
        "ListTransactionsFunction" => Box::pin(list_transactions::handler(app, request)).await,
        "CreatePaymentFunction" => Box::pin(create_payment::handler(app, request)).await,
        "CapturePaymentFunction" => Box::pin(capture_payment::handler(app, request)).await,
        "VoidPaymentFunction" => Box::pin(void_payment::handler(app, request)).await,
        "RefundPaymentFunction" => Box::pin(refund_payment::handler(app, request)).await,
        "GetPaymentFunction" => Box::pin(get_payment::handler(app, request)).await,
        "ListAuditFunction" => Box::pin(list_audit::handler(app, request)).await,
        "VerifyAuditFunction" => Box::pin(verify_audit::handler(app, request)).await,
        "MeFunction" => Box::pin(me::handler(app, request)).await,
        "CreateInvitationFunction" => Box::pin(create_invitation::handler(app, request)).await,
        "ListUsersFunction" => Box::pin(list_users::handler(app, request)).await,
        "UpdateUserFunction" => Box::pin(update_user::handler(app, request)).await,
        "EraseUserFunction" => Box::pin(erase_user::handler(app, request)).await,
        "ExportUserFunction" => Box::pin(export_user::handler(app, request)).await,
        "ListSessionsFunction" => Box::pin(list_sessions::handler(app, request)).await,
        "RevokeSessionFunction" => Box::pin(revoke_session::handler(app, request)).await,
        "LogoutAllFunction" => Box::pin(logout_all::handler(app, request)).await,
        "ChangePasswordFunction" => Box::pin(change_password::handler(app, request)).await,
        "EnrolTotpFunction" => Box::pin(enrol_totp::handler(app, request)).await,
        "ConfirmTotpFunction" => Box::pin(confirm_totp::handler(app, request)).await,
        "DisableTotpFunction" => Box::pin(disable_totp::handler(app, request)).await,
        "RegenerateRecoveryCodesFunction" => Box::pin(regenerate_recovery_codes::handler(app, request)).await,
        "ResetMfaFunction" => Box::pin(reset_mfa::handler(app, request)).await,
        "MfaSignInFunction" => Box::pin(mfa_sign_in::handler(app, request)).await,
        "CreateClientFunction" => Box::pin(create_client::handler(app, request)).await,
        "RotateClientSecretFunction" => Box::pin(rotate_client_secret::handler(app, request)).await,
        "RevokeClientFunction" => Box::pin(revoke_client::handler(app, request)).await,
        "OAuthTokenFunction" => Box::pin(oauth_token::handler(app, request)).await,
        "UpdateAccountFunction" => Box::pin(update_account::handler(app, request)).await,
        "GetBalanceFunction" => Box::pin(get_balance::handler(app, request)).await,
        "GetStatementFunction" => Box::pin(get_statement::handler(app, request)).await,
        "ExportAuditFunction" => Box::pin(export_audit::handler(app, request)).await,
        "AuditKeysFunction" => Box::pin(audit_keys::handler(app, request)).await,
        "RecordConsentFunction" => Box::pin(record_consent::handler(app, request)).await,
        "ListConsentsFunction" => Box::pin(list_consents::handler(app, request)).await,
        "CreateConversationFunction" => Box::pin(create_conversation::handler(app, request)).await,
        "GetConversationFunction" => Box::pin(get_conversation::handler(app, request)).await,
        "GetPresenceFunction" => Box::pin(get_presence::handler(app, request)).await,
        "ListConversationsFunction" => Box::pin(list_conversations::handler(app, request)).await,
        "AddParticipantsFunction" => Box::pin(add_participants::handler(app, request)).await,
        "RemoveParticipantFunction" => Box::pin(remove_participant::handler(app, request)).await,
        "LeaveConversationFunction" => Box::pin(leave_conversation::handler(app, request)).await,
        "PostMessageFunction" => Box::pin(post_message::handler(app, request)).await,
        "ListMessagesFunction" => Box::pin(list_messages::handler(app, request)).await,
        "EditMessageFunction" => Box::pin(edit_message::handler(app, request)).await,
        "DeleteMessageFunction" => Box::pin(delete_message::handler(app, request)).await,
        "MarkReadFunction" => Box::pin(mark_read::handler(app, request)).await,
        "RequestUploadFunction" => Box::pin(request_upload::handler(app, request)).await,
        "CompleteUploadFunction" => Box::pin(complete_upload::handler(app, request)).await,
        "GetMediaFunction" => Box::pin(get_media::handler(app, request)).await,
        "DeleteMediaFunction" => Box::pin(delete_media::handler(app, request)).await,
        "SearchMessagesFunction" => Box::pin(search_messages::handler(app, request)).await,
        "SearchConversationsFunction" => Box::pin(search_conversations::handler(app, request)).await,
        "SearchUsersFunction" => Box::pin(search_users::handler(app, request)).await,
        _ => return None,
    })
}

/// [`try_dispatch`] for tests: a handler error or an unknown function fails the test.
pub async fn dispatch(app: &App, function: &str, request: Request) -> Response<Body> {
    try_dispatch(app, function, request)
        .await
        .unwrap_or_else(|| panic!("no HTTP function {function}"))
        .unwrap_or_else(|e| panic!("{function} returned an error instead of a response: {e}"))
}

/// The API of one test stack.
pub struct Api<'a> {
    pub stack: &'a TestStack,
    apps: Mutex<HashMap<String, Arc<App>>>,
    /// Tenants whose treasurer (see [`Api::treasurer`]) is registered.
    treasurers: Mutex<std::collections::HashSet<String>>,
}

/// The claims of an access token (the functions check its signature).
pub fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let part = access_token.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The user id an access token names (its `sub`).
pub fn user_id(access_token: &str) -> String {
    claims(access_token)["sub"].as_str().expect("a sub claim").to_owned()
}

impl<'a> Api<'a> {
    pub fn new(stack: &'a TestStack) -> Self {
        Self { stack, apps: Mutex::new(HashMap::new()), treasurers: Mutex::default() }
    }

    /// Logs in `email` (registered) in `tenant`; returns the access token.
    pub async fn login(&self, tenant: &str, email: &str) -> String {
        let body = json!({ "tenant_id": tenant, "email": email, "password": PASSWORD }).to_string();
        let response =
            self.call("LoginFunction", api_event("POST", "/v1/auth/login", &[], &[], &[], Some(&body))).await;
        let (status, tokens) = crate::parts(&response);
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().expect("access token").to_owned()
    }

    /// Registers `email` in `tenant` with an invitation for `role` the
    /// operator issues (tenants service), and logs in: the access token.
    pub async fn invited(&self, tenant: &str, email: &str, role: caas::auth::Role) -> String {
        let registered = self.register_invited(tenant, email, role).await;
        assert_eq!(registered.status(), 201, "{:?}", crate::parts(&registered).1);
        self.login(tenant, email).await
    }

    async fn register_invited(&self, tenant: &str, email: &str, role: caas::auth::Role) -> Response<Body> {
        crate::open_tenant(self.stack, tenant).await;
        let app = self.stack.app("TenantsFunction");
        let invitation =
            caas::access::tenants::invite(&app, crate::SETUP_CORRELATION_ID, tenant, email, role)
                .await
                .unwrap_or_else(|e| panic!("invite {email} into {tenant}: {e}"));
        let body =
            json!({ "tenant_id": tenant, "email": email, "password": PASSWORD, "invitation": invitation.token })
                .to_string();
        self.call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body))).await
    }

    /// An owner of `tenant` (`treasurer@<tenant>.example.com`, invited by the
    /// operator the first time): the tests' funding is theirs to move.
    pub async fn treasurer(&self, tenant: &str) -> String {
        let email = format!("treasurer@{tenant}.example.com");
        let known = !self.treasurers.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.to_owned());
        if !known {
            // Another Api of the same stack may have registered them already.
            let registered = self.register_invited(tenant, &email, caas::auth::Role::Owner).await;
            assert!(matches!(registered.status().as_u16(), 201 | 409), "{:?}", crate::parts(&registered).1);
        }
        self.login(tenant, &email).await
    }

    /// The warm App of a function (built once, like a container's init phase).
    pub fn app(&self, function: &str) -> Arc<App> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.entry(function.to_owned()).or_insert_with(|| Arc::new(self.stack.app(function))).clone()
    }

    /// From now on, `function` runs with these extra environment variables
    /// (a container configured differently, e.g. a lower rate limit).
    pub fn configure(&self, function: &str, env: &[(&str, &str)]) {
        let app = Arc::new(self.stack.app_with(function, env));
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).insert(function.to_owned(), app);
    }

    pub async fn call(&self, function: &str, request: Request) -> Response<Body> {
        let app = self.app(function);
        dispatch(&app, function, request).await
    }

    /// One call of `route` (`"METHOD /path"`) as `token`: path parameters, a
    /// query as API Gateway decodes it, a JSON body. An error answer is
    /// checked to be problem+json.
    pub async fn route(
        &self,
        function: &str,
        route: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        token: &str,
        body: Option<&Value>,
    ) -> Response<Body> {
        use lambda_http::RequestExt;
        let (method, path) = route.split_once(' ').expect("METHOD /path");
        let bearer = format!("Bearer {token}");
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let body = body.map(Value::to_string);
        // The decoded values (a raw query string would need them encoded).
        let query: HashMap<String, String> =
            query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let request = api_event(method, path, params, &[], &headers, body.as_deref())
            .with_query_string_parameters(query);
        let response = self.call(function, request).await;
        let status = response.status().as_u16();
        if status >= 400 {
            crate::assert_problem(&response, status);
        }
        response
    }

    /// A group conversation created by `token`'s user with `participants`; its id.
    pub async fn group(&self, token: &str, title: &str, participants: &[&str]) -> String {
        let body = json!({ "type": "group", "title": title, "participants": participants });
        let response = self
            .route("CreateConversationFunction", "POST /v1/conversations", &[], &[], token, Some(&body))
            .await;
        let (status, conversation) = crate::parts(&response);
        assert_eq!(status, 201, "{conversation}");
        conversation["conversation_id"].as_str().expect("a conversation id").to_owned()
    }

    /// Registers (in `tenant`, created open to signup if need be) and logs
    /// in a user; returns the access token.
    pub async fn token(&self, tenant: &str, email: &str) -> String {
        crate::open_tenant(self.stack, tenant).await;
        let body = json!({ "tenant_id": tenant, "email": email, "password": PASSWORD }).to_string();
        let registered =
            self.call("RegisterFunction", api_event("POST", "/v1/users", &[], &[], &[], Some(&body))).await;
        assert!(matches!(registered.status().as_u16(), 201 | 409));
        self.login(tenant, email).await
    }

    /// An idempotent POST with a bearer token.
    pub async fn post(
        &self,
        function: &str,
        route: &str,
        id: Option<&str>,
        token: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Response<Body> {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("authorization", bearer.as_str()), ("content-type", "application/json")];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        let params: Vec<(&str, &str)> = id.map(|id| vec![("id", id)]).unwrap_or_default();
        let body = body.to_string();
        self.call(function, api_event("POST", route, &params, &[], &headers, Some(&body))).await
    }

    pub async fn get(
        &self,
        function: &str,
        route: &str,
        id: &str,
        token: &str,
        query: &[(&str, &str)],
    ) -> Response<Body> {
        let bearer = format!("Bearer {token}");
        self.call(
            function,
            api_event("GET", route, &[("id", id)], query, &[("authorization", &bearer)], None),
        )
        .await
    }

    /// Creates an account (an overdraft one with a limit of 10^12); returns its id.
    pub async fn account(&self, token: &str, currency: &str, allow_overdraft: bool) -> String {
        let key = uuid::Uuid::new_v4().to_string();
        let mut body =
            json!({ "currency": currency, "allow_overdraft": allow_overdraft, "name": "test account" });
        if allow_overdraft {
            body["overdraft_limit"] = json!(1_000_000_000_000i64);
        }
        let response =
            self.post("CreateAccountFunction", "/v1/accounts", None, token, Some(&key), &body).await;
        let (status, account) = crate::parts(&response);
        assert_eq!(status, 201, "{account}");
        account["account_id"].as_str().expect("account id").to_owned()
    }

    /// `PATCH /v1/accounts/{id}` with `body`.
    pub async fn patch_account(&self, token: &str, account: &str, body: Value) -> Response<Body> {
        let bearer = format!("Bearer {token}");
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let body = body.to_string();
        let request = api_event("PATCH", "/v1/accounts/{id}", &[("id", account)], &[], &headers, Some(&body));
        self.call("UpdateAccountFunction", request).await
    }

    /// Authorizes a payment; returns the response.
    pub async fn authorize(
        &self,
        token: &str,
        payer: &str,
        payee: &str,
        amount: i64,
        currency: &str,
    ) -> Response<Body> {
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({ "amount": amount, "currency": currency, "payer_account_id": payer, "payee_account_id": payee });
        self.post("CreatePaymentFunction", "/v1/payments", None, token, Some(&key), &body).await
    }

    pub async fn capture(&self, token: &str, payment: &str, amount: Option<i64>) -> Response<Body> {
        let key = uuid::Uuid::new_v4().to_string();
        let body = amount.map_or_else(|| json!({}), |a| json!({ "amount": a }));
        self.post(
            "CapturePaymentFunction",
            "/v1/payments/{id}/capture",
            Some(payment),
            token,
            Some(&key),
            &body,
        )
        .await
    }

    pub async fn void(&self, token: &str, payment: &str) -> Response<Body> {
        let key = uuid::Uuid::new_v4().to_string();
        self.post(
            "VoidPaymentFunction",
            "/v1/payments/{id}/void",
            Some(payment),
            token,
            Some(&key),
            &json!({}),
        )
        .await
    }

    pub async fn refund(&self, token: &str, payment: &str, amount: i64) -> Response<Body> {
        let key = uuid::Uuid::new_v4().to_string();
        self.post(
            "RefundPaymentFunction",
            "/v1/payments/{id}/refunds",
            Some(payment),
            token,
            Some(&key),
            &json!({ "amount": amount }),
        )
        .await
    }

    /// Funds `account` (in the tenant of `token`) from a fresh overdraft
    /// account of the tenant's treasurer, who authorizes and captures.
    /// Returns the funding account (the treasurer's).
    pub async fn fund(&self, token: &str, account: &str, amount: i64, currency: &str) -> String {
        let tenant = claims(token)["tenant"].as_str().expect("tenant claim").to_owned();
        let treasurer = self.treasurer(&tenant).await;
        let funding = self.account(&treasurer, currency, true).await;
        let (status, payment) =
            crate::parts(&self.authorize(&treasurer, &funding, account, amount, currency).await);
        assert_eq!(status, 201, "{payment}");
        let id = payment["payment_id"].as_str().expect("payment id").to_owned();
        assert_eq!(self.capture(&treasurer, &id, None).await.status(), 200);
        funding
    }

    pub async fn balance(&self, token: &str, account: &str) -> Value {
        let (status, body) =
            crate::parts(&self.get("GetAccountFunction", "/v1/accounts/{id}", account, token, &[]).await);
        assert_eq!(status, 200, "{body}");
        body["balance"].clone()
    }
}
