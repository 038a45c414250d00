use crate::problem::ErrorCode;
use proptest::prelude::*;

use super::*;

const NOW: u64 = 1_700_000_000;
const BODY: &[u8] = br#"{"points": [[1.0, 2.0]]}"#;

fn key(id: &str, fill: u8) -> MessageSigningKey {
    MessageSigningKey::new(id, vec![fill; 32]).unwrap()
}

fn verifier() -> SignatureVerifier {
    SignatureVerifier::new(key("edge-2", 2), None).unwrap()
}

fn request<'a>(digest: &'a str) -> SignableRequest<'a> {
    SignableRequest {
        method: "POST",
        path: "/api/v1/process_points",
        query: Some("stream=s1&wait=5"),
        content_digest: Some(digest),
        principal: Some("user:42"),
        request_id: "0190f0c2-1f3e-7a2b-9c1d-5e6f7a8b9c0d",
    }
}

fn verify_at(
    verifier: &SignatureVerifier,
    request: &SignableRequest<'_>,
    signed: &SignedHeaders,
    body: &[u8],
    now: u64,
    store: &mut MemoryNonceStore,
) -> Result<VerifiedRequest, SignatureError> {
    verifier.verify(
        request,
        Some(&signed.signature_input),
        Some(&signed.signature),
        body,
        now,
        store,
    )
}

#[test]
fn signs_the_profile_headers_exactly() {
    let digest = content_digest(BODY);
    let signed = sign_request(&request(&digest), &key("edge-2", 2), NOW, "n-1").unwrap();
    assert_eq!(
        signed.signature_input,
        r#"sig1=("@method" "@path" "@query" "content-digest" "x-h200-principal" "x-request-id");created=1700000000;keyid="edge-2";nonce="n-1";alg="hmac-sha256""#
    );
    assert_eq!(signed.content_digest, digest);
    assert!(signed.signature.starts_with("sig1=:") && signed.signature.ends_with(':'));
    assert_eq!(parse_signature(&signed.signature).unwrap()[0].1.len(), 32);
}

#[test]
fn round_trip_reports_key_created_and_nonce() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let signed = sign_request(&req, &key("edge-2", 2), NOW, "n-1").unwrap();
    let mut store = MemoryNonceStore::new(16);
    let verified = verify_at(&verifier(), &req, &signed, BODY, NOW + 3, &mut store).unwrap();
    assert_eq!(
        verified,
        VerifiedRequest {
            key_id: "edge-2".into(),
            created: NOW,
            nonce: "n-1".into()
        }
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn anonymous_requests_cover_no_principal_and_cannot_gain_one() {
    let empty_digest = content_digest(b"");
    let req = SignableRequest {
        principal: None,
        query: None,
        method: "GET",
        ..request(&empty_digest)
    };
    let signed = sign_request(&req, &key("edge-2", 2), NOW, "n-anon").unwrap();
    assert!(!signed.signature_input.contains("x-h200-principal"));
    let mut store = MemoryNonceStore::new(16);
    let with_principal = SignableRequest {
        principal: Some("admin"),
        ..req
    };
    assert_eq!(
        verify_at(&verifier(), &with_principal, &signed, b"", NOW, &mut store),
        Err(SignatureError::UnexpectedProfile(
            "the covered components differ"
        ))
    );
    assert!(verify_at(&verifier(), &req, &signed, b"", NOW, &mut store).is_ok());
}

#[test]
fn every_covered_component_is_tamper_evident() {
    let digest = content_digest(BODY);
    let original = request(&digest);
    let signed = sign_request(&original, &key("edge-2", 2), NOW, "n-1").unwrap();
    let other_digest = content_digest(b"{}");
    let tampered = [
        (
            "method",
            SignableRequest {
                method: "PUT",
                ..original
            },
        ),
        (
            "path",
            SignableRequest {
                path: "/api/v1/process_pointz",
                ..original
            },
        ),
        (
            "query",
            SignableRequest {
                query: Some("stream=s2&wait=5"),
                ..original
            },
        ),
        (
            "query dropped",
            SignableRequest {
                query: None,
                ..original
            },
        ),
        (
            "digest",
            SignableRequest {
                content_digest: Some(&other_digest),
                ..original
            },
        ),
        (
            "digest dropped",
            SignableRequest {
                content_digest: None,
                ..original
            },
        ),
        (
            "principal",
            SignableRequest {
                principal: Some("user:43"),
                ..original
            },
        ),
        (
            "principal dropped",
            SignableRequest {
                principal: None,
                ..original
            },
        ),
        (
            "request id",
            SignableRequest {
                request_id: "0190f0c2-0000",
                ..original
            },
        ),
    ];
    for (what, req) in tampered {
        let mut store = MemoryNonceStore::new(16);
        let error = verify_at(&verifier(), &req, &signed, BODY, NOW, &mut store).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidSignature, "{what}: {error}");
        assert!(
            store.is_empty(),
            "{what}: a refused request must not use up its nonce"
        );
    }
    let mut store = MemoryNonceStore::new(16);
    assert_eq!(
        verify_at(
            &verifier(),
            &original,
            &signed,
            b"{\"points\": []}",
            NOW,
            &mut store
        ),
        Err(SignatureError::DigestMismatch)
    );
    let path_only = SignableRequest {
        path: "/api/v1/rules",
        ..original
    };
    assert_eq!(
        verify_at(&verifier(), &path_only, &signed, BODY, NOW, &mut store),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn tampered_signature_headers_are_refused() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let signed = sign_request(&req, &key("edge-2", 2), NOW, "n-1").unwrap();
    let mut store = MemoryNonceStore::new(16);
    let later = SignedHeaders {
        signature_input: signed
            .signature_input
            .replace("created=1700000000", "created=1700000050"),
        ..signed.clone()
    };
    assert_eq!(
        verify_at(&verifier(), &req, &later, BODY, NOW + 70, &mut store),
        Err(SignatureError::Mismatch)
    );
    let mut mac = parse_signature(&signed.signature).unwrap().remove(0).1;
    mac[0] ^= 1;
    let flipped = SignedHeaders {
        signature: signature_header("sig1", &mac).unwrap(),
        ..signed.clone()
    };
    assert_eq!(
        verify_at(&verifier(), &req, &flipped, BODY, NOW, &mut store),
        Err(SignatureError::Mismatch)
    );
    let short = SignedHeaders {
        signature: "sig1=:AAAA:".into(),
        ..signed.clone()
    };
    assert_eq!(
        verify_at(&verifier(), &req, &short, BODY, NOW, &mut store),
        Err(SignatureError::Mismatch)
    );
    let relabelled = SignedHeaders {
        signature: signed.signature.replace("sig1=", "sig2="),
        ..signed.clone()
    };
    assert_eq!(
        verify_at(&verifier(), &req, &relabelled, BODY, NOW, &mut store)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidSignature
    );
    assert!(store.is_empty());
    assert!(
        verify_at(&verifier(), &req, &signed, BODY, NOW, &mut store).is_ok(),
        "the nonce was not burnt"
    );
}

#[test]
fn the_profile_is_enforced_before_any_key_is_used() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let profile =
        r#"("@method" "@path" "@query" "content-digest" "x-h200-principal" "x-request-id")"#;
    let params = r#";created=1700000000;keyid="edge-2";nonce="n";alg="hmac-sha256""#;
    let cases = [
        (
            r#"sig1=("@path" "@method" "@query" "content-digest" "x-h200-principal" "x-request-id")"#.to_owned()
                + params,
            "the covered components differ",
        ),
        (
            r#"sig1=("@method" "@path" "@query" "x-h200-principal" "x-request-id")"#.to_owned() + params,
            "the covered components differ",
        ),
        (format!("sig1={profile};created=1700000000;keyid=\"edge-2\";nonce=\"n\";alg=\"rsa-pss-sha512\""), "alg must be hmac-sha256"),
        (format!("sig1={profile};created=1700000000;keyid=\"edge-2\";nonce=\"n\";alg=hmac-sha256"), "alg must be a string"),
        (format!("sig1={profile};created=1700000000;keyid=\"edge-2\";alg=\"hmac-sha256\""), "expected exactly alg, keyid, created and nonce"),
        (format!("sig1={profile}{params};expires=1700000060"), "expected exactly alg, keyid, created and nonce"),
        (format!("sig1={profile};created=\"1700000000\";keyid=\"edge-2\";nonce=\"n\";alg=\"hmac-sha256\""), "created must be an integer"),
        (format!("sig1={profile};created=-1;keyid=\"edge-2\";nonce=\"n\";alg=\"hmac-sha256\""), "created is negative"),
        (format!("sig2={profile}{params}"), "no sig1 in Signature-Input"),
    ];
    let signature = "sig1=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:";
    for (input, reason) in cases {
        let mut store = MemoryNonceStore::new(4);
        assert_eq!(
            verifier().verify(&req, Some(&input), Some(signature), BODY, NOW, &mut store),
            Err(SignatureError::UnexpectedProfile(reason)),
            "{input}"
        );
    }
    let unknown = format!(
        "sig1={profile};created=1700000000;keyid=\"edge-9\";nonce=\"n\";alg=\"hmac-sha256\""
    );
    let mut store = MemoryNonceStore::new(4);
    assert_eq!(
        verifier().verify(&req, Some(&unknown), Some(signature), BODY, NOW, &mut store),
        Err(SignatureError::UnknownKey)
    );
}

#[test]
fn rotation_accepts_the_previous_key_until_it_is_retired() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let old_key = key("edge-1", 1);
    let new_key = key("edge-2", 2);
    let signed_old = sign_request(&req, &old_key, NOW, "n-old").unwrap();
    let signed_new = sign_request(&req, &new_key, NOW, "n-new").unwrap();
    let rotating = SignatureVerifier::new(new_key.clone(), Some(old_key.clone())).unwrap();
    let mut store = MemoryNonceStore::new(16);
    assert_eq!(
        verify_at(&rotating, &req, &signed_old, BODY, NOW, &mut store)
            .unwrap()
            .key_id,
        "edge-1"
    );
    assert_eq!(
        verify_at(&rotating, &req, &signed_new, BODY, NOW, &mut store)
            .unwrap()
            .key_id,
        "edge-2"
    );

    let retired = SignatureVerifier::new(new_key.clone(), None).unwrap();
    let mut store = MemoryNonceStore::new(16);
    let error = verify_at(&retired, &req, &signed_old, BODY, NOW, &mut store).unwrap_err();
    assert_eq!(error, SignatureError::UnknownKey);
    assert_eq!(error.code(), ErrorCode::InvalidSignature);

    let impostor = key("edge-2", 9);
    let forged = sign_request(&req, &impostor, NOW, "n-forged").unwrap();
    assert_eq!(
        verify_at(&retired, &req, &forged, BODY, NOW, &mut store),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        SignatureVerifier::new(new_key, Some(impostor)).unwrap_err(),
        SignatureError::InvalidKey("the two active keys share a key id")
    );
}

#[test]
fn window_is_sixty_seconds_back_and_five_ahead() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let k = key("edge-2", 2);
    let mut store = MemoryNonceStore::new(16);
    let at = |created: u64, nonce: &str, store: &mut MemoryNonceStore| {
        let signed = sign_request(&req, &k, created, nonce).unwrap();
        verify_at(&verifier(), &req, &signed, BODY, NOW, store)
    };
    assert!(at(NOW - 60, "a", &mut store).is_ok());
    let stale = at(NOW - 61, "b", &mut store).unwrap_err();
    assert_eq!(
        stale,
        SignatureError::Expired {
            created: NOW - 61,
            now: NOW
        }
    );
    assert_eq!(stale.code(), ErrorCode::StaleSignature);
    assert!(at(NOW + 5, "c", &mut store).is_ok());
    let future = at(NOW + 6, "d", &mut store).unwrap_err();
    assert_eq!(
        future,
        SignatureError::CreatedInFuture {
            created: NOW + 6,
            now: NOW
        }
    );
    assert_eq!(future.code(), ErrorCode::StaleSignature);
    assert_eq!(store.len(), 2, "only the accepted nonces are remembered");
}

#[test]
fn a_replayed_nonce_is_refused_within_the_window() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let signed = sign_request(&req, &key("edge-2", 2), NOW, "n-1").unwrap();
    let mut store = MemoryNonceStore::new(16);
    assert!(verify_at(&verifier(), &req, &signed, BODY, NOW, &mut store).is_ok());
    let replay = verify_at(&verifier(), &req, &signed, BODY, NOW + 30, &mut store).unwrap_err();
    assert_eq!(replay, SignatureError::Replayed);
    assert_eq!(replay.code(), ErrorCode::ReplayedRequest);
    assert_eq!(
        verify_at(&verifier(), &req, &signed, BODY, NOW + 61, &mut store)
            .unwrap_err()
            .code(),
        ErrorCode::StaleSignature
    );
}

#[test]
fn missing_headers_are_missing_signature() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let signed = sign_request(&req, &key("edge-2", 2), NOW, "n-1").unwrap();
    let mut store = MemoryNonceStore::new(16);
    for (input, signature) in [
        (None, None),
        (Some(signed.signature_input.as_str()), None),
        (None, Some(signed.signature.as_str())),
    ] {
        let error = verifier()
            .verify(&req, input, signature, BODY, NOW, &mut store)
            .unwrap_err();
        assert_eq!(error, SignatureError::Missing);
        assert_eq!(error.code(), ErrorCode::MissingSignature);
    }
}

#[test]
fn signing_refuses_bad_nonces_missing_digest_and_injected_values() {
    let digest = content_digest(BODY);
    let req = request(&digest);
    let k = key("edge-2", 2);
    for nonce in ["", "new\nline", "é", &"n".repeat(MAX_NONCE_LEN + 1)] {
        assert_eq!(
            sign_request(&req, &k, NOW, nonce),
            Err(SignatureError::InvalidNonce),
            "{nonce:?}"
        );
    }
    assert!(sign_request(&req, &k, NOW, &"n".repeat(MAX_NONCE_LEN)).is_ok());
    let no_digest = SignableRequest {
        content_digest: None,
        ..req
    };
    assert_eq!(
        sign_request(&no_digest, &k, NOW, "n"),
        Err(SignatureError::MissingComponent("content-digest".into()))
    );
    let injected = SignableRequest {
        principal: Some("user:1\r\nx-h200-principal: admin"),
        ..req
    };
    assert!(matches!(
        sign_request(&injected, &k, NOW, "n"),
        Err(SignatureError::InvalidComponent(_))
    ));
}

#[test]
fn keys_need_32_byte_secrets_and_redact_them() {
    assert_eq!(
        MessageSigningKey::new("k", vec![7; 31]).unwrap_err(),
        SignatureError::InvalidKey("the secret is shorter than 32 bytes")
    );
    assert!(MessageSigningKey::new("", vec![7; 32]).is_err());
    assert!(MessageSigningKey::new("bad\nid", vec![7; 32]).is_err());
    let k =
        MessageSigningKey::new("edge-2", b"super-secret-value-0123456789abcdef".to_vec()).unwrap();
    let shown = format!("{k:?}");
    assert!(
        shown.contains("edge-2") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(
        !shown.contains("super-secret") && !shown.contains("115"),
        "{shown}"
    );
    assert_eq!(SignatureError::InvalidKey("x").code(), ErrorCode::Internal);
}

#[test]
fn memory_nonce_store_prunes_and_is_bounded() {
    let mut store = MemoryNonceStore::new(2);
    assert!(store.remember("k1", "a", 100));
    assert!(!store.remember("k1", "a", 100), "seen before");
    assert!(store.remember("k2", "a", 160), "nonces are per key id");
    assert!(!store.remember("k1", "b", 100), "full: fail closed");
    store.forget_expired(100);
    assert_eq!(store.len(), 2, "an entry lives through its expiry second");
    store.forget_expired(101);
    assert_eq!(store.len(), 1);
    assert!(store.remember("k1", "b", 150));
    assert!(!store.remember("k1", "c", 170), "full again");
    store.forget_expired(1_000);
    assert!(store.is_empty());
}

fn method() -> impl Strategy<Value = String> {
    "[A-Z]{1,10}"
}

fn path() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9/._~%!$&'()*+,;=:@-]{0,60}"
}

proptest! {
    #[test]
    fn sign_then_verify_holds_and_one_changed_byte_breaks_it(
        method in method(),
        path in path(),
        query in proptest::option::of("[ -~]{0,60}"),
        principal in proptest::option::of("[!-~]([ -~]{0,30}[!-~])?"),
        request_id in "[A-Za-z0-9-]{1,36}",
        body in proptest::collection::vec(any::<u8>(), 1..1024),
        nonce in "[ -~]{1,64}",
        body_index in any::<prop::sample::Index>(),
        path_index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = key("edge-2", 2);
        let verifier = SignatureVerifier::new(key.clone(), None).unwrap();
        let digest = content_digest(&body);
        let req = SignableRequest {
            method: &method,
            path: &path,
            query: query.as_deref(),
            content_digest: Some(&digest),
            principal: principal.as_deref(),
            request_id: &request_id,
        };
        let signed = sign_request(&req, &key, NOW, &nonce).unwrap();
        let mut store = MemoryNonceStore::new(8);
        let verified = verify_at(&verifier, &req, &signed, &body, NOW, &mut store).unwrap();
        prop_assert_eq!(verified.nonce, nonce);

        let mut changed_body = body.clone();
        changed_body[body_index.index(body.len())] ^= flip;
        let mut store = MemoryNonceStore::new(8);
        prop_assert_eq!(
            verify_at(&verifier, &req, &signed, &changed_body, NOW, &mut store),
            Err(SignatureError::DigestMismatch)
        );

        let mut changed_path = path.clone().into_bytes();
        let at = path_index.index(changed_path.len());
        changed_path[at] = if changed_path[at] == b'a' { b'b' } else { b'a' };
        let changed_path = String::from_utf8(changed_path).unwrap();
        let moved = SignableRequest { path: &changed_path, ..req };
        prop_assert_eq!(verify_at(&verifier, &moved, &signed, &body, NOW, &mut store), Err(SignatureError::Mismatch));
    }

    #[test]
    fn parsers_never_panic(input in any::<String>(), sf_like in r#"[a-z0-9=:;,()"\\ ?*@+/\t-]{0,200}"#) {
        for text in [&input, &sf_like] {
            let _ = parse_signature_input(text);
            let _ = parse_signature(text);
            let _ = verify_content_digest(text, b"body");
        }
    }

    #[test]
    fn signature_input_serialize_then_parse_round_trips(
        label in "[a-z*][a-z0-9_.*-]{0,8}",
        components in proptest::collection::vec("[ -~]{0,20}", 0..8),
        params in proptest::collection::btree_map("[a-z*][a-z0-9_.*-]{0,8}", bare_item(), 0..6),
    ) {
        let input = SignatureInput { components, params: params.into_iter().collect() };
        let header = signature_input_header(&label, &input).unwrap();
        prop_assert_eq!(parse_signature_input(&header).unwrap(), vec![(label, input)]);
    }
}

fn bare_item() -> impl Strategy<Value = BareItem> {
    prop_oneof![
        (-999_999_999_999_999i64..=999_999_999_999_999).prop_map(BareItem::Integer),
        "[ -~]{0,20}".prop_map(BareItem::String),
        "[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]{0,10}".prop_map(BareItem::Token),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(BareItem::ByteSequence),
        any::<bool>().prop_map(BareItem::Boolean),
    ]
}
