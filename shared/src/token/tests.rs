//! Issue and verification together: tokens issued by one key and checked by a key set, and the
//! forgeries a verifier must refuse.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{
    Audiences, HS256Key, JWTClaims, MACLike, RS256KeyPair, UnixTimeStamp, VerificationOptions,
};
use proptest::prelude::*;

use super::issue::PrivateMaterial;
use super::verify::PublicMaterial;
use super::*;
use crate::problem::ErrorCode;

const NOW: u64 = 1_750_000_000;
const ISSUER: &str = "https://auth.h200.example";
const AUDIENCE: &str = "h200-api";

fn policy() -> TokenPolicy {
    TokenPolicy::new(ISSUER, AUDIENCE)
}

fn ed_key(kid: &str) -> SigningKey {
    SigningKey::generate_ed25519(kid, [7; 32]).unwrap()
}

/// One 2048-bit RSA key (PKCS#8 DER) for the whole test run: generating it is slow.
fn rsa_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| RS256KeyPair::generate(2048).unwrap().to_der().unwrap())
}

fn rsa_key(kid: &str) -> SigningKey {
    SigningKey::rs256_from_der(kid, rsa_der()).unwrap()
}

fn access_claims() -> H200Claims {
    H200Claims::access(
        vec!["viewer".into()],
        vec!["analysis:read".into(), "rules:read".into()],
        false,
    )
}

fn set_of(keys: &[&SigningKey]) -> KeySet {
    let mut set = KeySet::new();
    for key in keys {
        set.insert(key.verification_key());
    }
    set
}

fn access_token(key: &SigningKey, now: u64) -> String {
    key.issue(&policy(), "user-42", "jti-1", &access_claims(), now)
        .unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parts(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn decoded_json(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Claims as `issue` would make them, for tests that need one registered claim changed.
fn registered_claims(now: u64) -> JWTClaims<H200Claims> {
    JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(now)),
        expires_at: Some(UnixTimeStamp::from_secs(now + 1800)),
        invalid_before: Some(UnixTimeStamp::from_secs(now)),
        issuer: Some(ISSUER.into()),
        subject: Some("user-42".into()),
        audiences: Some(Audiences::AsString(AUDIENCE.into())),
        jwt_id: Some("jti-1".into()),
        nonce: None,
        custom: access_claims(),
    }
}

fn sign_raw(key: &SigningKey, claims: &JWTClaims<H200Claims>) -> String {
    match &key.material {
        PrivateMaterial::Ed25519 { key_pair, .. } => key.sign_ed25519(key_pair, claims).unwrap(),
        _ => panic!("tests sign raw claims with Ed25519 keys only"),
    }
}

/// A compact token over `header` and `payload`, really signed by the Ed25519 `key`.
fn sign_with_header(key: &SigningKey, header: &str, payload: &str) -> String {
    let PrivateMaterial::Ed25519 { key_pair, .. } = &key.material else {
        panic!("an Ed25519 key");
    };
    let signing_input = format!("{}.{payload}", b64(header));
    let signature = key_pair.sk.sign(signing_input.as_bytes(), None);
    format!("{signing_input}.{}", b64(&signature[..]))
}

#[test]
fn issued_ed25519_access_token_verifies_with_its_claims() {
    let key = ed_key("ed-1");
    let token = access_token(&key, NOW);
    assert_eq!(
        token,
        access_token(&key, NOW),
        "Ed25519 issuance is deterministic"
    );
    let (header, payload, _) = parts(&token);
    assert_eq!(
        decoded_json(&header),
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed-1"})
    );
    let payload = decoded_json(&payload);
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["aud"], AUDIENCE);
    assert_eq!(payload["iat"], NOW);
    assert_eq!(payload["nbf"], NOW);
    assert_eq!(payload["exp"], NOW + 1800);
    assert_eq!(payload["token_use"], "access");

    let verified = set_of(&[&key])
        .verify(&token, &policy(), TokenKind::Access, NOW + 60)
        .unwrap();
    assert_eq!(
        verified,
        VerifiedToken {
            subject: "user-42".into(),
            jwt_id: "jti-1".into(),
            issued_at: NOW,
            expires_at: NOW + 1800,
            kid: "ed-1".into(),
            claims: access_claims(),
        }
    );
}

#[test]
fn issued_rs256_and_hs256_tokens_verify() {
    let rsa = rsa_key("rsa-1");
    let token = access_token(&rsa, NOW);
    assert_eq!(decoded_json(&parts(&token).0)["alg"], "RS256");
    let verified = set_of(&[&rsa])
        .verify(&token, &policy(), TokenKind::Access, NOW)
        .unwrap();
    assert_eq!(verified.kid, "rsa-1");
    assert_eq!(verified.claims, access_claims());

    let hmac = SigningKey::hs256("hs-1", &[9; 32]).unwrap();
    let token = access_token(&hmac, NOW);
    assert_eq!(decoded_json(&parts(&token).0)["alg"], "HS256");
    let verified = set_of(&[&hmac])
        .verify(&token, &policy(), TokenKind::Access, NOW)
        .unwrap();
    assert_eq!(verified.subject, "user-42");
    assert!(
        hmac.public_jwk().is_none(),
        "an HMAC secret is never published"
    );
    assert!(matches!(
        SigningKey::hs256("hs-short", &[9; 31]),
        Err(TokenError::InvalidKey(_))
    ));
}

#[test]
fn alg_none_token_is_refused() {
    let key = ed_key("ed-1");
    let (_, payload, _) = parts(&access_token(&key, NOW));
    let set = set_of(&[&key]);
    for header in [
        r#"{"alg":"none","typ":"JWT","kid":"ed-1"}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"None","kid":"ed-1"}"#,
    ] {
        let forged = format!("{}.{payload}.", b64(header));
        assert_eq!(
            set.verify(&forged, &policy(), TokenKind::Access, NOW),
            Err(TokenError::AlgorithmMismatch {
                expected: Algorithm::EdDSA,
                found: decoded_json(&b64(header))["alg"].as_str().unwrap().into(),
            }),
            "{header}"
        );
    }
}

#[test]
fn hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    let rsa = rsa_key("rsa-1");
    let VerificationKey {
        material: PublicMaterial::Rs256(public),
        ..
    } = rsa.verification_key()
    else {
        panic!("an RSA key");
    };
    let set = set_of(&[&rsa]);
    let pem = public.to_pem().unwrap();
    let der = public.to_der().unwrap();
    for secret in [pem.as_bytes(), pem.trim().as_bytes(), &der[..]] {
        let forger = HS256Key::from_bytes(secret).with_key_id("rsa-1");
        let forged = forger.authenticate(registered_claims(NOW)).unwrap();
        // The forgery is sound HS256: a verifier that let the header pick HS256 would accept it.
        let naive = HS256Key::from_bytes(secret).verify_token::<H200Claims>(
            &forged,
            Some(VerificationOptions {
                artificial_time: Some(UnixTimeStamp::from_secs(NOW)),
                ..VerificationOptions::default()
            }),
        );
        assert!(naive.is_ok());
        assert_eq!(
            set.verify(&forged, &policy(), TokenKind::Access, NOW),
            Err(TokenError::AlgorithmMismatch {
                expected: Algorithm::RS256,
                found: "HS256".into(),
            })
        );
    }
}

#[test]
fn token_naming_key_b_but_signed_by_key_a_is_refused() {
    let key_a = ed_key("ed-a");
    let key_b = SigningKey::generate_ed25519("ed-b", [8; 32]).unwrap();
    let set = set_of(&[&key_a, &key_b]);
    let impostor = SigningKey::generate_ed25519("ed-b", [7; 32]).unwrap();
    let forged = access_token(&impostor, NOW);
    assert_eq!(decoded_json(&parts(&forged).0)["kid"], "ed-b");
    assert_eq!(
        set.verify(&forged, &policy(), TokenKind::Access, NOW),
        Err(TokenError::BadSignature)
    );
    // The same bytes are fine under key A's id, so only the key choice refused it.
    let honest = access_token(&key_a, NOW);
    assert!(
        set.verify(&honest, &policy(), TokenKind::Access, NOW)
            .is_ok()
    );
}

#[test]
fn ed25519_token_relabelled_rs256_is_refused() {
    let ed = ed_key("ed-1");
    let rsa = rsa_key("rsa-1");
    let set = set_of(&[&ed, &rsa]);
    let (_, payload, signature) = parts(&access_token(&ed, NOW));
    for kid in ["ed-1", "rsa-1"] {
        let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#);
        let forged = format!("{}.{payload}.{signature}", b64(header));
        let refused = set.verify(&forged, &policy(), TokenKind::Access, NOW);
        match kid {
            "ed-1" => assert_eq!(
                refused,
                Err(TokenError::AlgorithmMismatch {
                    expected: Algorithm::EdDSA,
                    found: "RS256".into(),
                })
            ),
            _ => assert_eq!(refused, Err(TokenError::BadSignature)),
        }
    }
}

#[test]
fn expiry_allows_exactly_the_leeway() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let token = access_token(&key, NOW);
    let exp = NOW + 1800;
    for late in [0, 20, 30] {
        assert!(
            set.verify(&token, &policy(), TokenKind::Access, exp + late)
                .is_ok(),
            "{late} s after exp"
        );
    }
    let expired = set.verify(&token, &policy(), TokenKind::Access, exp + 31);
    assert_eq!(expired, Err(TokenError::ExpiredToken));
    assert_eq!(expired.unwrap_err().code(), ErrorCode::ExpiredToken);
    assert_eq!(
        set.verify(&token, &policy(), TokenKind::Access, exp + 86_400 * 3),
        Err(TokenError::ExpiredToken),
        "a long-expired token still reads as expired, so the client refreshes"
    );
}

#[test]
fn token_not_valid_yet_is_refused() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let mut claims = registered_claims(NOW);
    claims.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 120));
    let token = sign_raw(&key, &claims);
    assert_eq!(
        set.verify(&token, &policy(), TokenKind::Access, NOW),
        Err(TokenError::NotYetValid)
    );
    assert!(
        set.verify(&token, &policy(), TokenKind::Access, NOW + 90)
            .is_ok()
    );

    let issued_in_future = access_token(&key, NOW + 3600);
    let refused = set.verify(&issued_in_future, &policy(), TokenKind::Access, NOW);
    assert_eq!(refused, Err(TokenError::NotYetValid));
    assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidToken);
    let skewed = access_token(&key, NOW + 20);
    assert!(
        set.verify(&skewed, &policy(), TokenKind::Access, NOW)
            .is_ok()
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let token = access_token(&key, NOW);
    let other_issuer = TokenPolicy::new("https://evil.example", AUDIENCE);
    assert_eq!(
        set.verify(&token, &other_issuer, TokenKind::Access, NOW),
        Err(TokenError::WrongIssuer)
    );
    let other_audience = TokenPolicy::new(ISSUER, "another-api");
    assert_eq!(
        set.verify(&token, &other_audience, TokenKind::Access, NOW),
        Err(TokenError::WrongAudience)
    );
    let mut claims = registered_claims(NOW);
    claims.audiences = None;
    assert_eq!(
        set.verify(&sign_raw(&key, &claims), &policy(), TokenKind::Access, NOW),
        Err(TokenError::MissingClaim("aud"))
    );
}

#[test]
fn access_token_older_than_a_day_is_refused_whatever_its_exp() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let mut lax = policy();
    lax.access_ttl_secs = 7 * 86_400;
    let token = key
        .issue(&lax, "user-42", "jti-1", &access_claims(), NOW)
        .unwrap();
    let day = 86_400;
    assert!(
        set.verify(&token, &policy(), TokenKind::Access, NOW + day)
            .is_ok()
    );
    assert!(
        set.verify(&token, &policy(), TokenKind::Access, NOW + day + 30)
            .is_ok()
    );
    assert_eq!(
        set.verify(&token, &policy(), TokenKind::Access, NOW + day + 31),
        Err(TokenError::TooOld)
    );
}

#[test]
fn refresh_and_access_tokens_are_not_interchangeable() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let refresh = key
        .issue(
            &policy(),
            "user-42",
            "jti-r",
            &H200Claims::refresh("fam-1", true),
            NOW,
        )
        .unwrap();
    assert_eq!(
        set.verify(&refresh, &policy(), TokenKind::Access, NOW),
        Err(TokenError::WrongKind {
            expected: TokenKind::Access,
            found: TokenKind::Refresh,
        })
    );
    let access = access_token(&key, NOW);
    assert_eq!(
        set.verify(&access, &policy(), TokenKind::Refresh, NOW),
        Err(TokenError::WrongKind {
            expected: TokenKind::Refresh,
            found: TokenKind::Access,
        })
    );
    let six_days = NOW + 6 * 86_400;
    let verified = set
        .verify(&refresh, &policy(), TokenKind::Refresh, six_days)
        .unwrap();
    assert_eq!(verified.claims.family.as_deref(), Some("fam-1"));
    assert_eq!(verified.expires_at, NOW + 7 * 86_400);
    assert_eq!(
        set.verify(
            &refresh,
            &policy(),
            TokenKind::Refresh,
            NOW + 7 * 86_400 + 31
        ),
        Err(TokenError::ExpiredToken)
    );
}

#[test]
fn tampered_payload_is_refused() {
    for key in [ed_key("ed-1"), rsa_key("rsa-1")] {
        let set = set_of(&[&key]);
        let (header, payload, signature) = parts(&access_token(&key, NOW));
        let mut claims = decoded_json(&payload);
        claims["roles"] = serde_json::json!(["admin"]);
        claims["permissions"] = serde_json::json!(["admin:users"]);
        let forged = format!("{header}.{}.{signature}", b64(claims.to_string()));
        assert_eq!(
            set.verify(&forged, &policy(), TokenKind::Access, NOW),
            Err(TokenError::BadSignature),
            "{:?}",
            key.algorithm()
        );
        let mut bad_signature = signature.into_bytes();
        bad_signature[5] = if bad_signature[5] == b'A' { b'B' } else { b'A' };
        let forged = format!(
            "{header}.{payload}.{}",
            String::from_utf8(bad_signature).unwrap()
        );
        assert_eq!(
            set.verify(&forged, &policy(), TokenKind::Access, NOW),
            Err(TokenError::BadSignature)
        );
    }
}

#[test]
fn missing_registered_claims_are_refused() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    type StripClaim = fn(&mut JWTClaims<H200Claims>);
    let cases: [(&str, StripClaim); 6] = [
        ("exp", |c| c.expires_at = None),
        ("nbf", |c| c.invalid_before = None),
        ("iat", |c| c.issued_at = None),
        ("sub", |c| c.subject = None),
        ("jti", |c| c.jwt_id = Some(String::new())),
        ("iss", |c| c.issuer = None),
    ];
    for (name, strip) in cases {
        let mut claims = registered_claims(NOW);
        strip(&mut claims);
        assert_eq!(
            set.verify(&sign_raw(&key, &claims), &policy(), TokenKind::Access, NOW),
            Err(TokenError::MissingClaim(name))
        );
    }
    assert_eq!(
        key.issue(&policy(), "", "jti", &access_claims(), NOW),
        Err(TokenError::MissingClaim("sub"))
    );
}

#[test]
fn key_ids_pick_the_key() {
    let key_a = ed_key("ed-a");
    let key_b = SigningKey::generate_ed25519("ed-b", [8; 32]).unwrap();
    let both = set_of(&[&key_a, &key_b]);
    let token = access_token(&key_a, NOW);
    assert_eq!(
        both.verify(&token, &policy(), TokenKind::Access, NOW)
            .unwrap()
            .kid,
        "ed-a"
    );
    let (_, payload, _) = parts(&token);
    let without_kid = sign_with_header(&key_a, r#"{"alg":"EdDSA"}"#, &payload);
    assert_eq!(
        both.verify(&without_kid, &policy(), TokenKind::Access, NOW),
        Err(TokenError::MissingKeyId)
    );
    let only_a = set_of(&[&key_a]);
    assert!(
        only_a
            .verify(&without_kid, &policy(), TokenKind::Access, NOW)
            .is_ok()
    );
    let other = access_token(&SigningKey::generate_ed25519("ed-c", [3; 32]).unwrap(), NOW);
    let unknown = both.verify(&other, &policy(), TokenKind::Access, NOW);
    assert_eq!(unknown, Err(TokenError::UnknownKeyId("ed-c".into())));
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::InvalidToken);
}

#[test]
fn jwks_round_trip_verifies_ed25519_and_rs256_tokens() {
    let ed = ed_key("ed-1");
    let rsa = rsa_key("rsa-1");
    let hmac = SigningKey::hs256("hs-1", &[9; 32]).unwrap();
    let published = set_of(&[&ed, &rsa, &hmac]).to_jwks_json();
    let document: serde_json::Value = serde_json::from_str(&published).unwrap();
    let keys = document["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the HMAC secret is not published");
    assert_eq!(keys[0]["kid"], "ed-1");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(keys[1]["kid"], "rsa-1");
    assert_eq!(keys[1]["kty"], "RSA");
    assert_eq!(keys[1]["e"], "AQAB");
    assert!(keys.iter().all(|key| key.get("d").is_none()));

    let fetched = KeySet::from_jwks_json(&published).unwrap();
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched.get("rsa-1").unwrap().algorithm(), Algorithm::RS256);
    for key in [&ed, &rsa] {
        let verified = fetched
            .verify(&access_token(key, NOW), &policy(), TokenKind::Access, NOW)
            .unwrap();
        assert_eq!(verified.kid, key.kid());
    }
    assert_eq!(fetched.to_jwks_json(), published);
}

#[test]
fn jwks_skips_unsupported_keys_and_refuses_malformed_documents() {
    let ed = ed_key("ed-1").public_jwk().unwrap();
    let mut without_kid = ed.clone();
    without_kid.as_object_mut().unwrap().remove("kid");
    let document = serde_json::json!({ "keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        without_kid,
    ]});
    let set = KeySet::from_jwks_json(&document.to_string()).unwrap();
    assert_eq!(set.len(), 1);
    let thumbprint = set.keys.keys().next().unwrap().clone();
    assert_eq!(
        thumbprint.len(),
        43,
        "RFC 7638 SHA-256 thumbprint, base64url"
    );

    for malformed in [
        "",
        "{",
        "[]",
        r#"{"keys": 3}"#,
        r#"{"keys": [1]}"#,
        r#"{"keys": [{}]}"#,
    ] {
        assert_eq!(
            KeySet::from_jwks_json(malformed).unwrap_err(),
            TokenError::MalformedKeySet,
            "{malformed}"
        );
    }
    let mut leaked = ed.clone();
    leaked["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A".into();
    let mut bad_x = ed.clone();
    bad_x["x"] = "not base64!".into();
    for bad in [leaked, bad_x] {
        let document = serde_json::json!({ "keys": [bad] }).to_string();
        assert!(matches!(
            KeySet::from_jwks_json(&document),
            Err(TokenError::InvalidKey(_))
        ));
    }
    let duplicate = serde_json::json!({ "keys": [ed.clone(), ed] }).to_string();
    assert!(matches!(
        KeySet::from_jwks_json(&duplicate),
        Err(TokenError::InvalidKey(_))
    ));
    assert!(
        KeySet::from_jwks_json(r#"{"keys": []}"#)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn malformed_tokens_are_refused_as_invalid() {
    let key = ed_key("ed-1");
    let set = set_of(&[&key]);
    let token = access_token(&key, NOW);
    let too_long = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
    for garbage in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b",
        &too_long,
        &format!("{token}.x"),
    ] {
        let refused = set.verify(garbage, &policy(), TokenKind::Access, NOW);
        assert_eq!(refused, Err(TokenError::Malformed), "{garbage:.40}");
        assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidToken);
    }
    let (_, payload, _) = parts(&token);
    let critical = sign_with_header(
        &key,
        r#"{"alg":"EdDSA","kid":"ed-1","crit":["exp"]}"#,
        &payload,
    );
    assert_eq!(
        set.verify(&critical, &policy(), TokenKind::Access, NOW),
        Err(TokenError::Unsupported)
    );
}

#[test]
fn keys_can_be_shared_across_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<KeySet>();
    shared::<SigningKey>();
    shared::<TokenPolicy>();
}

proptest! {
    #[test]
    fn arbitrary_tokens_never_verify_nor_panic(token in "\\PC{0,300}") {
        let set = set_of(&[&ed_key("ed-1")]);
        prop_assert!(set.verify(&token, &policy(), TokenKind::Access, NOW).is_err());
    }

    #[test]
    fn arbitrary_jwks_documents_never_panic(document in "\\PC{0,200}") {
        let _ = KeySet::from_jwks_json(&document);
    }
}
