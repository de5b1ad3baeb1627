//! Second-factor foundations against the emulator: TOTP secrets are sealed
//! with a KMS data key bound to their tenant and user.

use caas_tests::*;

#[tokio::test]
async fn a_sealed_secret_opens_only_for_its_tenant_and_user() {
    let stack = TestStack::new().await;
    let data_key = stack.stack.resources["DataKey"].name.clone();
    let app = stack.app_with("LoginFunction", &[("DATA_KEY_ID", &data_key)]);
    let secret = caas::auth::totp::new_secret();
    let sealed = caas::auth::envelope::seal(&app, "acme", "user-1", &secret).await.unwrap();
    let text = serde_json::to_string(&sealed).unwrap();
    assert!(!text.contains(&caas::auth::totp::base32(&secret)), "never in plaintext");
    assert_eq!(caas::auth::envelope::open(&app, "acme", "user-1", &sealed).await.unwrap(), secret);
    assert!(caas::auth::envelope::open(&app, "acme", "user-2", &sealed).await.is_err(), "another user");
    assert!(caas::auth::envelope::open(&app, "globex", "user-1", &sealed).await.is_err(), "another tenant");
    let mut tampered = sealed.clone();
    tampered.ciphertext = sealed.nonce.clone();
    assert!(caas::auth::envelope::open(&app, "acme", "user-1", &tampered).await.is_err());
}
