//! Access tokens: JWS compact, ES256, `typ: at+jwt` (RFC 9068), signed by the
//! KMS asymmetric key. Signing is ours (KMS returns DER signatures, JWS needs
//! raw R‖S), so verification shares this codec: the algorithm is pinned to
//! ES256 and the key is looked up by `kid` among the published keys only; the
//! header never chooses anything else. Signatures are low-S: ours are
//! normalized when assembled, and a high-S signature (the other valid form of
//! the same signature, RFC 6979 / BIP 62 malleability) is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

pub const ALGORITHM: &str = "ES256";
pub const TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub tenant: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// RFC 9068 §7.2. Absent in tokens issued before roles existed: no role.
    #[serde(default)]
    pub roles: Vec<String>,
    /// RFC 9068 §2.2: the OAuth client the token was issued to; machine
    /// tokens (client credentials) have `sub` = `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The session (refresh-token family) a user's token was issued in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// A public JWK (RFC 7517/7518) for an ES256 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// The verification key of the configured signing key.
#[derive(Debug, Clone)]
pub struct TokenKey {
    pub kid: String,
    pub verifying_key: VerifyingKey,
    pub jwk: Jwk,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not ES256")]
    UnsupportedAlgorithm,
    #[error("token type is not at+jwt")]
    WrongType,
    #[error("token key is unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token issued in the future")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("public key is not a P-256 SubjectPublicKeyInfo")]
    NotP256,
    #[error("signature is not a DER ECDSA P-256 signature")]
    BadDerSignature,
}

impl TokenKey {
    /// From KMS `GetPublicKey` output (DER SubjectPublicKeyInfo).
    pub fn from_spki_der(kid: &str, der: &[u8]) -> Result<Self, KeyError> {
        let public = p256::PublicKey::from_public_key_der(der).map_err(|_| KeyError::NotP256)?;
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else { return Err(KeyError::NotP256) };
        let jwk = Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64.encode(x),
            y: B64.encode(y),
            kid: kid.to_owned(),
            alg: ALGORITHM.into(),
            use_: "sig".into(),
        };
        Ok(Self { kid: kid.to_owned(), verifying_key: VerifyingKey::from(&public), jwk })
    }
}

/// `base64url(header).base64url(claims)`: the bytes KMS signs.
pub fn signing_input(kid: &str, claims: &AccessClaims) -> String {
    let header = Header { alg: ALGORITHM.into(), typ: Some(TOKEN_TYPE.into()), kid: Some(kid.into()) };
    // Serializing plain structs of strings and integers cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    format!("{}.{}", B64.encode(header), B64.encode(claims))
}

/// Joins the signing input with a DER signature converted to raw R‖S, with
/// S in the lower half of the order: KMS returns either half, and [`verify`]
/// accepts only the low one (s and n − s both verify; taking one closes the
/// malleability).
pub fn assemble(signing_input: &str, der_signature: &[u8]) -> Result<String, KeyError> {
    let signature = Signature::from_der(der_signature).map_err(|_| KeyError::BadDerSignature)?;
    let signature = signature.normalize_s().unwrap_or(signature);
    Ok(format!("{signing_input}.{}", B64.encode(signature.to_bytes())))
}

pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: i64,
}

/// Allowed clock skew for `iat`.
const IAT_SKEW_SECONDS: i64 = 60;

/// The `kid` a token's header names, if it has a readable header.
pub fn kid_of(token: &str) -> Option<String> {
    let header: Header = decode_json(token.split('.').next()?).ok()?;
    header.kid
}

/// Verifies `token` with the key among `keys` its `kid` names.
pub fn verify(token: &str, keys: &[TokenKey], expected: &Expected<'_>) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = decode_json(header_b64)?;
    if header.alg != ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.iter().find(|key| key.kid == kid))
        .ok_or(TokenError::UnknownKey)?;
    let signature_bytes = B64.decode(signature_b64).map_err(|_| TokenError::Malformed)?;
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| TokenError::BadSignature)?;
    // A high S (s > n/2) is the other of the two valid signatures of the
    // same token: refused, so a token has exactly one encoding.
    if signature.normalize_s().is_some() {
        return Err(TokenError::BadSignature);
    }
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    key.verifying_key.verify(signed.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
    let claims: AccessClaims = decode_json(claims_b64)?;
    if claims.iss != expected.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != expected.audience {
        return Err(TokenError::WrongAudience);
    }
    if expected.now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.iat > expected.now + IAT_SKEW_SECONDS {
        return Err(TokenError::NotYetValid);
    }
    if claims.sub.is_empty() || crate::tenant::TenantId::parse(&claims.tenant).is_err() {
        return Err(TokenError::Malformed);
    }
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    fn key_pair() -> (SigningKey, TokenKey) {
        let signing = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let der = signing.verifying_key().to_public_key_der().unwrap();
        (signing.clone(), TokenKey::from_spki_der("k1", der.as_bytes()).unwrap())
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "caas".into(),
            aud: "caas-api".into(),
            sub: "user-1".into(),
            tenant: "acme".into(),
            iat: 1_000,
            exp: 1_900,
            jti: "j".into(),
            roles: vec!["admin".into()],
            client_id: None,
            sid: None,
        }
    }

    fn sign(signing: &SigningKey, input: &str) -> String {
        let signature: Signature = signing.sign(input.as_bytes());
        assemble(input, signature.to_der().as_bytes()).unwrap()
    }

    const EXPECTED: Expected<'static> = Expected { issuer: "caas", audience: "caas-api", now: 1_500 };

    #[test]
    fn verifies_a_well_formed_token() {
        let (signing, key) = key_pair();
        let token = sign(&signing, &signing_input("k1", &claims()));
        assert_eq!(verify(&token, std::slice::from_ref(&key), &EXPECTED), Ok(claims()));
        assert_eq!(key.jwk.kty, "EC");
        assert_eq!(B64.decode(&key.jwk.x).unwrap().len(), 32);
    }

    #[test]
    fn rejects_every_broken_variant() {
        let (signing, key) = key_pair();
        let good = sign(&signing, &signing_input("k1", &claims()));
        let expired = Expected { now: 1_900, ..EXPECTED };
        assert_eq!(verify(&good, std::slice::from_ref(&key), &expired), Err(TokenError::Expired));
        let other_aud = Expected { audience: "other", ..EXPECTED };
        assert_eq!(verify(&good, std::slice::from_ref(&key), &other_aud), Err(TokenError::WrongAudience));
        let other_iss = Expected { issuer: "other", ..EXPECTED };
        assert_eq!(verify(&good, std::slice::from_ref(&key), &other_iss), Err(TokenError::WrongIssuer));
        // Tampered claims keep the old signature.
        let mut forged = claims();
        forged.tenant = "evil".into();
        let forged_input = signing_input("k1", &forged);
        let signature = good.rsplit('.').next().unwrap();
        assert_eq!(
            verify(&format!("{forged_input}.{signature}"), std::slice::from_ref(&key), &EXPECTED),
            Err(TokenError::BadSignature)
        );
        // alg: none and HS256 are refused before any signature check.
        for alg in ["none", "HS256", "es256"] {
            let header = B64.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#));
            let body = good.split('.').nth(1).unwrap();
            let token = format!("{header}.{body}.{signature}");
            assert_eq!(
                verify(&token, std::slice::from_ref(&key), &EXPECTED),
                Err(TokenError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        let (other_signing, _) = key_pair();
        let wrong_key = sign(&other_signing, &signing_input("k1", &claims()));
        assert_eq!(verify(&wrong_key, std::slice::from_ref(&key), &EXPECTED), Err(TokenError::BadSignature));
        let unknown_kid = sign(&signing, &signing_input("k2", &claims()));
        assert_eq!(verify(&unknown_kid, std::slice::from_ref(&key), &EXPECTED), Err(TokenError::UnknownKey));
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(
                verify(garbage, std::slice::from_ref(&key), &EXPECTED),
                Err(TokenError::Malformed),
                "{garbage}"
            );
        }
    }

    fn key_pair_with(kid: &str) -> (SigningKey, TokenKey) {
        let signing = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let der = signing.verifying_key().to_public_key_der().unwrap();
        (signing.clone(), TokenKey::from_spki_der(kid, der.as_bytes()).unwrap())
    }

    #[test]
    fn the_key_is_picked_by_kid_among_the_published_ones() {
        let (current, current_key) = key_pair_with("current");
        let (previous, previous_key) = key_pair_with("previous");
        let published = [current_key.clone(), previous_key.clone()];
        for (signing, kid) in [(&current, "current"), (&previous, "previous")] {
            let token = sign(signing, &signing_input(kid, &claims()));
            assert_eq!(kid_of(&token).as_deref(), Some(kid));
            assert_eq!(verify(&token, &published, &EXPECTED), Ok(claims()), "{kid}");
        }
        // Once the previous key is retired (no longer published), its tokens fail.
        let old = sign(&previous, &signing_input("previous", &claims()));
        assert_eq!(verify(&old, std::slice::from_ref(&current_key), &EXPECTED), Err(TokenError::UnknownKey));
        // A key published under another kid does not verify a token naming this one.
        let swapped = sign(&previous, &signing_input("current", &claims()));
        assert_eq!(verify(&swapped, &published, &EXPECTED), Err(TokenError::BadSignature));
    }

    /// (r, s) → (r, n − s): the same token with the high-S twin of its signature.
    fn high_s_twin(token: &str) -> String {
        let (input, signature_b64) = token.rsplit_once('.').unwrap();
        let signature = Signature::from_slice(&B64.decode(signature_b64).unwrap()).unwrap();
        let (r, s) = signature.split_scalars();
        let twin = Signature::from_scalars(r, -*s).unwrap();
        assert!(twin.normalize_s().is_some(), "the twin has the high S");
        format!("{input}.{}", B64.encode(twin.to_bytes()))
    }

    #[test]
    fn high_s_signatures_are_refused_and_never_issued() {
        let (signing, key) = key_pair();
        let input = signing_input("k1", &claims());
        for _ in 0..8 {
            let token = sign(&signing, &input);
            assert_eq!(verify(&token, std::slice::from_ref(&key), &EXPECTED), Ok(claims()));
            let twin = high_s_twin(&token);
            // The twin is a mathematically valid ECDSA signature of the same input...
            let signature =
                Signature::from_slice(&B64.decode(twin.rsplit('.').next().unwrap()).unwrap()).unwrap();
            assert!(key.verifying_key.verify(input.as_bytes(), &signature).is_ok());
            // ...and the verifier refuses it.
            assert_eq!(verify(&twin, std::slice::from_ref(&key), &EXPECTED), Err(TokenError::BadSignature));
        }
        // assemble normalizes a high-S DER signature (KMS returns either half).
        let token = sign(&signing, &input);
        let twin = high_s_twin(&token);
        let high = Signature::from_slice(&B64.decode(twin.rsplit('.').next().unwrap()).unwrap()).unwrap();
        let reassembled = assemble(&input, high.to_der().as_bytes()).unwrap();
        assert_eq!(reassembled, token);
        assert_eq!(verify(&reassembled, std::slice::from_ref(&key), &EXPECTED), Ok(claims()));
    }
}
