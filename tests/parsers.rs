//! Every parser of untrusted input under property tests: no panic, bounded
//! time, and only the answers it may give. Request bodies go through the
//! handlers' own entry (`caas::http::json_body`) into their types and the
//! validators behind them; access tokens through `jwt::verify` (a high-S
//! signature is refused); pagination cursors and limits; stored PHC strings;
//! the Idempotency-Key header; every job's event JSON into its handler's input
//! type (arbitrary values and mutations of the events/ samples). No emulator:
//! these are pure. Payment bodies are checked beside their private parsers
//! (shared/src/payments/input_tests.rs).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use caas::AppError;
use caas::auth::jwt::{self, AccessClaims, Expected, TokenError, TokenKey};
use caas::auth::password::{self, Verdict};
use caas::config::Argon2Cost;
use caas_tests::repo_root;
use lambda_http::{Body, Request};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Case counts stay small enough for the whole file to run in seconds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Field names the parsers know, so generated objects reach past "unknown field".
const KEYS: &[&str] = &[
    "tenant_id",
    "email",
    "password",
    "invitation",
    "refresh_token",
    "role",
    "status",
    "currency",
    "allow_overdraft",
    "name",
    "amount",
    "payer_account_id",
    "payee_account_id",
    "description",
    "metadata",
    "action",
    "to",
    "segments",
    "dry_run",
    "target_table",
    "point_in_time",
    "backup_arn",
    "source_table",
    "table",
    "signup",
    "owner_email",
    "limit",
    "cursor",
    "Records",
    "body",
    "messageId",
    "attributes",
    "eventName",
    "dynamodb",
    "NewImage",
    "SequenceNumber",
    "detail-type",
    "job",
    "grace_seconds",
    "max_events",
    "S",
    "N",
    "M",
    "L",
    "BOOL",
    "NULL",
];
/// String values the parsers branch on.
const WORDS: &[&str] = &[
    "create",
    "get",
    "list",
    "update",
    "suspend",
    "reactivate",
    "invite",
    "run",
    "drill",
    "restore",
    "status",
    "up",
    "down",
    "sweep",
    "latest",
    "INSERT",
    "MODIFY",
    "Scheduled Event",
    "owner",
    "admin",
    "member",
    "auditor",
    "active",
    "disabled",
    "open",
    "invite_only",
    "USD",
    "JPY",
    "acme",
    "ada@example.com",
    "2026-01-01T00:00:00Z",
    "migrate.segment",
    "OUTBOX",
    "outbox_event",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => proptest::sample::select(KEYS).prop_map(str::to_owned), 1 => ".{0,12}"]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        2 => ".{0,40}",
        1 => "[0-9a-f-]{36}",
        1 => Just(caas::ids::new_id()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

/// Any JSON value, biased towards the shapes the parsers read.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// `value` with the nodes picked by `edits` (pre-order index, modulo the node
/// count) replaced: near-valid inputs from a valid sample.
fn mutate(value: &Value, edits: &[(usize, Value)]) -> Value {
    fn count(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(fields) => fields.values().map(count).sum(),
            _ => 0,
        }
    }
    fn replace(value: &mut Value, target: &mut usize, with: &Value) -> bool {
        if *target == 0 {
            *value = with.clone();
            return true;
        }
        *target -= 1;
        let children: Vec<&mut Value> = match value {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(fields) => fields.values_mut().collect(),
            _ => Vec::new(),
        };
        children.into_iter().any(|child| replace(child, target, with))
    }
    let mut value = value.clone();
    for (at, with) in edits {
        let mut target = at % count(&value);
        replace(&mut value, &mut target, with);
    }
    value
}

fn edits() -> impl Strategy<Value = Vec<(usize, Value)>> {
    proptest::collection::vec((any::<usize>(), json_value()), 1..4)
}

fn request(body: Body) -> Request {
    http::Request::builder().body(body).expect("a request")
}

/// A body parse answers the value or a 400/413 problem, never anything else.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match caas::http::json_body::<T>(&request(Body::Binary(bytes.to_vec()))) {
        Ok(value) => Some(value),
        Err(AppError::BadRequest { .. } | AppError::PayloadTooLarge { .. }) => None,
        Err(other) => panic!("a body parse answered {other:?}"),
    }
}

fn is_bad_request<T: std::fmt::Debug>(result: Result<T, AppError>) -> bool {
    match result {
        Ok(_) => false,
        Err(AppError::BadRequest { .. }) => true,
        Err(other) => panic!("a validator answered {other:?}"),
    }
}

/// Every typed body of the API, and the validators its service runs first.
fn check_bodies(bytes: &[u8]) {
    use caas::auth::credentials::{Email, check_new_password, check_password_size};
    use caas::auth::service::{Credentials, RefreshRequest, Registration};
    if let Some(login) = parse_body::<Credentials>(bytes) {
        let _ = caas::tenant::TenantId::parse(&login.tenant_id);
        is_bad_request(Email::parse(&login.email));
        is_bad_request(check_password_size(&login.password));
    }
    if let Some(registration) = parse_body::<Registration>(bytes) {
        is_bad_request(Email::parse(&registration.email));
        is_bad_request(check_new_password(&registration.password));
        if let Some(token) = registration.invitation {
            let _ = caas::auth::invitation_token::parse(&token);
        }
    }
    if let Some(refresh) = parse_body::<RefreshRequest>(bytes) {
        let _ = caas::auth::refresh_token::parse(&refresh.refresh_token);
    }
    if let Some(invitation) = parse_body::<caas::access::invitations::InvitationRequest>(bytes) {
        is_bad_request(Email::parse(&invitation.email));
        is_bad_request(caas::auth::Role::from_field("role", &invitation.role));
    }
    if let Some(change) = parse_body::<caas::access::users::UserChange>(bytes) {
        if let Some(role) = change.role {
            is_bad_request(caas::auth::Role::from_field("role", &role));
        }
    }
    // Chat.
    if let Some(post) = parse_body::<caas::chat::messages::PostRequest>(bytes) {
        is_bad_request(caas::chat::messages::checked(&post));
    }
    parse_body::<caas::chat::conversations::CreateRequest>(bytes);
    parse_body::<caas::chat::conversations::AddRequest>(bytes);
    parse_body::<caas::chat::messages::EditRequest>(bytes);
    parse_body::<caas::chat::messages::ReadRequest>(bytes);
    if let Some(upload) = parse_body::<caas::chat::media::UploadRequest>(bytes) {
        is_bad_request(caas::chat::media::checked(&upload));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        match caas::chat::realtime::parse_send(text) {
            Ok(_) | Err(AppError::BadRequest { .. }) | Err(AppError::PayloadTooLarge { .. }) => {}
            Err(other) => panic!("a WebSocket frame answered {other:?}"),
        }
    }
    // The payments routes parse a JSON value first (it is fingerprinted).
    parse_body::<Value>(bytes);
    let _ = caas::http::optional_json_body(&request(Body::Binary(bytes.to_vec())));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn request_bodies_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_bodies(&bytes);
    }

    #[test]
    fn request_bodies_of_any_json(value in json_value()) {
        check_bodies(value.to_string().as_bytes());
    }

    /// A refused body never echoes a value it was sent (they may be secrets).
    #[test]
    fn refused_bodies_never_echo_values(
        fields in proptest::collection::btree_map(key(), prop_oneof![
            Just(json!("zz-secret-value")), Just(json!(["zz-secret-value"])),
            Just(json!({"count": "zz-secret-value"})), Just(json!(17)),
        ], 0..5)
    ) {
        let body = Value::Object(fields.into_iter().collect()).to_string();
        let request = request(Body::Text(body));
        let results: Vec<Result<(), AppError>> = vec![
            caas::http::json_body::<caas::auth::service::Credentials>(&request).map(drop),
            caas::http::json_body::<caas::auth::service::Registration>(&request).map(drop),
            caas::http::json_body::<caas::access::users::UserChange>(&request).map(drop),
            caas::http::json_body::<caas::access::invitations::InvitationRequest>(&request).map(drop),
        ];
        for error in results.into_iter().filter_map(Result::err) {
            let shown = format!("{error} {:?}", match &error { AppError::BadRequest { field, .. } => field.clone(), _ => None });
            prop_assert!(!shown.contains("zz-secret"), "{}", shown);
        }
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing(extra in 1usize..4096) {
        let body = vec![b' '; caas::http::MAX_BODY_BYTES + extra];
        let refused = matches!(
            caas::http::json_body::<Value>(&request(Body::Binary(body))),
            Err(AppError::PayloadTooLarge { .. })
        );
        prop_assert!(refused);
    }
}

// ---- access tokens ----

const EXPECTED: Expected<'static> = Expected { issuer: "caas", audience: "caas-api", now: 1_500 };

fn key_pair() -> (SigningKey, TokenKey) {
    let signing = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let der = signing.verifying_key().to_public_key_der().expect("SPKI");
    let key = TokenKey::from_spki_der("k1", der.as_bytes()).expect("a P-256 key");
    (signing, key)
}

fn claims(sub: String, tenant: String, roles: Vec<String>) -> AccessClaims {
    AccessClaims {
        iss: "caas".into(),
        aud: "caas-api".into(),
        sub,
        tenant,
        iat: 1_000,
        exp: 1_900,
        jti: "j".into(),
        roles,
        client_id: None,
        sid: None,
    }
}

/// As the token service signs: DER from the signer, assembled (low S).
fn sign(signing: &SigningKey, input: &str) -> String {
    let signature: Signature = signing.sign(input.as_bytes());
    jwt::assemble(input, signature.to_der().as_bytes()).expect("a DER signature")
}

fn high_s_twin(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let signature = Signature::from_slice(&B64.decode(signature).expect("base64")).expect("R||S");
    let (r, s) = signature.split_scalars();
    let twin = Signature::from_scalars(r, -*s).expect("n - s is a scalar");
    format!("{input}.{}", B64.encode(twin.to_bytes()))
}

fn keys() -> &'static (SigningKey, TokenKey) {
    static KEYS: std::sync::OnceLock<(SigningKey, TokenKey)> = std::sync::OnceLock::new();
    KEYS.get_or_init(key_pair)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn tokens_of_any_text_are_refused(token in ".{0,300}") {
        prop_assert!(jwt::verify(&token, std::slice::from_ref(&keys().1), &EXPECTED).is_err());
    }

    #[test]
    fn tokens_of_any_header_claims_and_signature_are_refused(
        header in json_value(), body in json_value(), signature in proptest::collection::vec(any::<u8>(), 0..80)
    ) {
        let token = format!(
            "{}.{}.{}",
            B64.encode(header.to_string()), B64.encode(body.to_string()), B64.encode(&signature)
        );
        prop_assert!(jwt::verify(&token, std::slice::from_ref(&keys().1), &EXPECTED).is_err());
    }

    /// Signed tokens with any claims: verify decides without panicking, and a
    /// changed character or the high-S twin of the signature is refused.
    #[test]
    fn signed_tokens_verify_only_as_issued(
        sub in "[a-z0-9-]{1,40}", tenant in "[a-z0-9-]{0,12}", roles in proptest::collection::vec(".{0,10}", 0..3),
        at in any::<usize>(), with in proptest::char::range('-', 'z'),
    ) {
        let (signing, key) = keys();
        let claims = claims(sub, tenant, roles);
        let token = sign(signing, &jwt::signing_input("k1", &claims));
        let verified = jwt::verify(&token, std::slice::from_ref(key), &EXPECTED);
        match caas::tenant::TenantId::parse(&claims.tenant) {
            Ok(_) => prop_assert_eq!(verified, Ok(claims.clone())),
            Err(_) => prop_assert_eq!(verified, Err(TokenError::Malformed)),
        }
        prop_assert_eq!(jwt::verify(&high_s_twin(&token), std::slice::from_ref(key), &EXPECTED), Err(TokenError::BadSignature));
        let mut chars: Vec<char> = token.chars().collect();
        let at = at % chars.len();
        if chars[at] != with {
            chars[at] = with;
            let changed: String = chars.into_iter().collect();
            prop_assert!(jwt::verify(&changed, std::slice::from_ref(key), &EXPECTED).is_err(), "{}", changed);
        }
    }

    /// Claims of any JSON shape under a valid signature: refused unless they
    /// are well-formed claims, and never a panic.
    #[test]
    fn signed_tokens_of_any_claims_json(body in json_value()) {
        let (signing, key) = keys();
        let header = B64.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#);
        let input = format!("{header}.{}", B64.encode(body.to_string()));
        let _ = jwt::verify(&sign(signing, &input), std::slice::from_ref(key), &EXPECTED);
    }
}

// ---- pagination, query strings, headers ----

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn page_queries(limit in proptest::option::of(".{0,12}"), cursor in proptest::option::of(prop_oneof![
        ".{0,60}", "[0-9a-fA-F-]{36}", Just(caas::ids::new_id()),
    ])) {
        match caas::paging::PageQuery::parse(limit.as_deref(), cursor.as_deref(), 25, 100) {
            Ok(page) => {
                prop_assert!((1..=100).contains(&page.limit));
                prop_assert_eq!(page.after.as_deref(), cursor.as_deref());
                prop_assert!(page.after.as_deref().is_none_or(caas::ids::is_valid_id));
            }
            Err(error) => {
                let refused = matches!(error, AppError::BadRequest { .. });
                prop_assert!(refused, "{:?}", error);
            }
        }
    }

    /// The operator's tenants list pages by tenant id.
    #[test]
    fn tenant_ids_and_cursors(raw in prop_oneof![".{0,70}", "[a-z0-9-]{0,70}"]) {
        if let Ok(tenant) = caas::tenant::TenantId::parse(&raw) {
            prop_assert!((3..=64).contains(&tenant.as_str().len()));
            prop_assert!(!tenant.as_str().contains('#'));
        }
    }

    #[test]
    fn audit_list_queries(after in proptest::option::of(".{0,24}"), limit in proptest::option::of(".{0,12}")) {
        if let Ok(query) = caas::audit::ListQuery::parse(after.as_deref(), limit.as_deref()) {
            prop_assert!((1..=200).contains(&query.limit));
        }
    }

    #[test]
    fn idempotency_keys(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let Ok(value) = http::HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let mut request = request(Body::Empty);
        request.headers_mut().insert(caas::idempotency::HEADER, value);
        match caas::idempotency::key_from(&request) {
            // openapi.yaml: ^[!-~]{1,255}$ (surrounding spaces are not part of a header value).
            Ok(key) => {
                prop_assert!((1..=255).contains(&key.len()));
                prop_assert!(key.bytes().all(|b| (b'!'..=b'~').contains(&b)));
            }
            Err(error) => {
                let refused = matches!(error, AppError::BadRequest { .. });
                prop_assert!(refused, "{:?}", error);
            }
        }
    }

    #[test]
    fn opaque_tokens(token in prop_oneof![".{0,300}", "(rt|inv)\\.[a-z0-9-]{0,20}\\.[A-Za-z0-9_-]{0,60}"]) {
        let _ = caas::auth::refresh_token::parse(&token);
        let _ = caas::auth::invitation_token::parse(&token);
    }
}

// ---- stored password hashes ----

const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 64, iterations: 1, parallelism: 1 };
/// A verification that hashes at all hashes at most at CHEAP-like costs here;
/// everything else must answer at once.
const BOUNDED: Duration = Duration::from_secs(2);

fn bounded<T>(run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = run();
    assert!(started.elapsed() < BOUNDED, "took {:?}", started.elapsed());
    result
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn stored_strings_of_any_text(password in ".{0,40}", stored in ".{0,120}") {
        prop_assert_eq!(bounded(|| password::verify(CHEAP, &password, &stored)), Verdict::Mismatch);
    }

    /// PHC strings with any parameters: costs beyond the ceiling never hash.
    #[test]
    fn phc_strings_of_any_parameters(
        algorithm in prop_oneof![
            Just("argon2id".to_owned()), Just("argon2i".to_owned()), Just("argon2d".to_owned()), "[a-z0-9-]{1,10}",
        ],
        version in prop_oneof![Just("v=19".to_owned()), "v=[0-9]{1,3}"],
        m in prop_oneof![8u32..=128, 131_073u32..=u32::MAX],
        t in prop_oneof![1u32..=2, 11u32..=u32::MAX],
        p in prop_oneof![1u32..=2, 5u32..=u32::MAX],
        salt in "[A-Za-z0-9+/]{0,30}", hash in "[A-Za-z0-9+/]{0,50}", password in ".{0,20}",
    ) {
        let stored = format!("${algorithm}${version}$m={m},t={t},p={p}${salt}${hash}");
        prop_assert_eq!(bounded(|| password::verify(CHEAP, &password, &stored)), Verdict::Mismatch);
    }

    #[test]
    fn bcrypt_strings_of_any_cost(
        variant in "2[aby]", cost in prop_oneof![4u32..=5, 15u32..=99], rest in "[./A-Za-z0-9]{0,60}",
    ) {
        let stored = format!("${variant}${cost:02}${rest}");
        prop_assert_eq!(bounded(|| password::verify(CHEAP, "legacy password", &stored)), Verdict::Mismatch);
    }
}

// ---- the jobs' events ----

fn sample(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("a sample event")).expect("sample JSON")
}

/// Runs every job's input parsing on one value, as the runtime hands it over
/// (the payload deserialized into the handler's input type) and on as far as
/// the handlers parse before any I/O.
fn check_jobs(value: &Value) {
    let bytes = value.to_string();
    bounded(|| job_inputs(value));
    // The runtime deserializes the payload bytes; the same types from text.
    let _ = serde_json::from_str::<backup::Input>(&bytes);
    let _ = serde_json::from_str::<migrate::Input>(&bytes);
    let _ = serde_json::from_str::<caas::outbox::drain::Invocation>(&bytes);
    let _ = serde_json::from_str::<aws_lambda_events::event::sqs::SqsEvent>(&bytes);
}

fn job_inputs(value: &Value) {
    if let Ok(backup::Input(caas::backup::Command::Drill { point_in_time: Some(at), .. })) =
        serde_json::from_value::<backup::Input>(value.clone())
    {
        let _ = caas::backup::PointInTime::parse(&at);
    }
    if let Ok(migrate::Input::Jobs(jobs)) = serde_json::from_value::<migrate::Input>(value.clone()) {
        for body in jobs.records.iter().filter_map(|m| m.body.as_deref()) {
            let _ = serde_json::from_str::<caas::migrate::Job>(body);
        }
    }
    let _ = caas::http::from_value::<caas::access::tenants::Command>(value.clone());
    let _ = verify::tenant_of(value);
    if let Ok(caas::outbox::drain::Invocation::Stream(event)) =
        serde_json::from_value::<caas::outbox::drain::Invocation>(value.clone())
    {
        for record in &event.records {
            let _ = caas::store::outbox::event_from_image(record.change.new_image.clone());
        }
    }
    if let Ok(batch) = serde_json::from_value::<aws_lambda_events::event::sqs::SqsEvent>(value.clone()) {
        for message in &batch.records {
            let _ = caas::audit::service::envelope(message);
        }
    }
}

const JOB_SAMPLES: &[&str] = &[
    "backup.json",
    "migrate.json",
    "migrate-status.json",
    "tenants-create.json",
    "tenants-get.json",
    "tenants-invite.json",
    "tenants-list.json",
    "tenants-reactivate.json",
    "tenants-suspend.json",
    "tenants-update.json",
    "tenants-require-mfa.json",
    "verify.json",
    "outbox-drain.json",
    "outbox-drain-sweep.json",
    "audit-writer.json",
];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn job_events_of_any_json(value in json_value()) {
        check_jobs(&value);
    }

    #[test]
    fn job_events_near_the_samples(which in proptest::sample::select(JOB_SAMPLES), edits in edits()) {
        check_jobs(&mutate(&sample(which), &edits));
    }

    /// Queue message bodies (the audit writer's envelopes, the migrate job's
    /// segment work) as any text.
    #[test]
    fn queue_message_bodies(body in prop_oneof![".{0,200}".prop_map(Value::String), json_value().prop_map(|v| Value::String(v.to_string()))]) {
        let mut batch = sample("audit-writer.json");
        batch["Records"][0]["body"] = body;
        check_jobs(&batch);
    }
}

/// The samples themselves parse into their handlers' inputs (the mutations
/// above start from real events).
#[test]
fn job_samples_parse() {
    for name in JOB_SAMPLES {
        let value = sample(name);
        let parsed = match name.split(['-', '.']).next() {
            Some("backup") => serde_json::from_value::<backup::Input>(value).is_ok(),
            Some("migrate") => serde_json::from_value::<migrate::Input>(value).is_ok(),
            Some("tenants") => caas::http::from_value::<caas::access::tenants::Command>(value).is_ok(),
            Some("verify") => verify::tenant_of(&value).is_ok(),
            Some("outbox") => serde_json::from_value::<caas::outbox::drain::Invocation>(value).is_ok(),
            Some("audit") => serde_json::from_value::<aws_lambda_events::event::sqs::SqsEvent>(value)
                .is_ok_and(|batch| batch.records.iter().all(|m| caas::audit::service::envelope(m).is_ok())),
            other => panic!("no parser for {other:?}"),
        };
        assert!(parsed, "{name} does not parse");
    }
}
