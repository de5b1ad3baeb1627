//! Signing-key rotation: the JWKS publishes the current and the previous
//! key, a token is verified with the key its `kid` names among them, a
//! rotation does not invalidate live tokens, and a retired key's tokens fail.

use caas_tests::api::Api;
use caas_tests::*;
use serde_json::{Value, json};

async fn job(stack: &TestStack, action: &str) -> Result<Value, String> {
    let app = stack.app("SigningKeysFunction");
    let event =
        lambda_runtime::LambdaEvent::new(json!({ "action": action }), lambda_runtime::Context::default());
    signing_keys::handler(&app, event).await.map_err(|e| e.to_string())
}

fn header_kid(token: &str) -> String {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
            .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn verifies(app: &caas::App, token: &str) -> bool {
    let request = api_request("GET", "/v1/me", &[("authorization", &format!("Bearer {token}"))], None);
    caas::auth::authenticate(app, &request).await.is_ok()
}

/// A token with fresh claims signed by the KMS key `key_id` itself.
async fn signed_by(stack: &TestStack, key_id: &str, sub: &str) -> String {
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
    let now = caas::clock::Clock::now(stack.clock.as_ref()).unix_timestamp();
    let claims = caas::auth::jwt::AccessClaims {
        iss: "caas".into(),
        aud: "caas-api".into(),
        sub: sub.into(),
        tenant: "acme".into(),
        iat: now,
        exp: now + 900,
        jti: caas::ids::new_id(),
        roles: vec!["member".into()],
        client_id: None,
        sid: None,
    };
    let input = caas::auth::jwt::signing_input(key_id, &claims);
    let signed = stack
        .clients
        .kms
        .sign()
        .key_id(key_id)
        .message(Blob::new(input.as_bytes()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    caas::auth::jwt::assemble(&input, signed.signature().unwrap().as_ref()).unwrap()
}

async fn jwks_kids(app: &caas::App) -> Vec<String> {
    let (status, body) =
        parts(&jwks::handler(app, api_request("GET", "/.well-known/jwks.json", &[], None)).await.unwrap());
    assert_eq!(status, 200);
    body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_rotation_keeps_live_tokens_valid_and_a_retired_key_stops_verifying() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack);
    let before = api.token("acme", "ada@example.com").await;
    let sample: Value = serde_json::from_str(&event_file("signing-keys-status.json")).unwrap();
    let event = lambda_runtime::LambdaEvent::new(sample, lambda_runtime::Context::default());
    let first = signing_keys::handler(&stack.app("SigningKeysFunction"), event).await.unwrap();
    let old_kid = first["current"].as_str().unwrap().to_owned();
    assert_eq!(header_kid(&before), old_kid);
    assert!(first.get("previous").is_none());
    // Warm containers, whose key sets predate the rotation.
    let warm = stack.app("MeFunction");
    assert!(verifies(&warm, &before).await);
    assert_eq!(jwks_kids(&api.app("JwksFunction")).await, vec![old_kid.clone()]);

    let rotated = job(&stack, "rotate").await.unwrap();
    let new_kid = rotated["current"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["previous"], old_kid.as_str());
    assert!(job(&stack, "rotate").await.unwrap_err().contains("retire the previous key"), "two at most");

    // The warm login container learns the new key from its first signature.
    let after = api.token("acme", "ada@example.com").await;
    assert_eq!(header_kid(&after), new_kid);
    stack.clock.advance(time::Duration::seconds(6));
    assert!(verifies(&warm, &after).await, "a warm verifier fetches the new key");
    assert!(verifies(&warm, &before).await, "the previous key's tokens still verify");
    let fresh = stack.app("MeFunction");
    assert!(verifies(&fresh, &before).await && verifies(&fresh, &after).await);
    stack.clock.advance(time::Duration::minutes(6));
    let mut published = jwks_kids(&api.app("JwksFunction")).await;
    published.sort();
    let mut expected = vec![old_kid.clone(), new_kid.clone()];
    expected.sort();
    assert_eq!(published, expected, "the JWKS publishes both");

    // Retired only once its last token can have expired.
    assert!(job(&stack, "retire").await.unwrap_err().contains("may live until"));
    stack.clock.advance(time::Duration::minutes(15));
    let retired = job(&stack, "retire").await.unwrap();
    assert_eq!(retired["current"], new_kid.as_str());
    assert!(retired.get("previous").is_none());

    // A token signed by the retired key (fresh claims) no longer verifies;
    // the current key's do, and so does the next rotation.
    let forged = signed_by(&stack, &old_kid, "mallory").await;
    let current = signed_by(&stack, &new_kid, "ada").await;
    let fresh = stack.app("MeFunction");
    assert!(!verifies(&fresh, &forged).await, "retired: not published");
    assert!(verifies(&fresh, &current).await);
    stack.clock.advance(time::Duration::seconds(caas::auth::keys::CACHE_SECONDS));
    assert!(!verifies(&warm, &forged).await, "a warm verifier drops it with its cache");
    assert_eq!(jwks_kids(&stack.app("JwksFunction")).await, vec![new_kid.clone()]);
    assert!(job(&stack, "rotate").await.is_ok());
}
