//! Cost of issuing and verifying access tokens, per algorithm the edge accepts.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jwt_simple::prelude::RS256KeyPair;
use shared::token::{H200Claims, KeySet, SigningKey, TokenKind, TokenPolicy};

const NOW: u64 = 1_750_000_000;

fn claims() -> H200Claims {
    H200Claims::access(
        vec!["analyst".into()],
        vec![
            "analysis:read".into(),
            "analysis:write".into(),
            "rules:read".into(),
            "rules:execute".into(),
        ],
        true,
    )
}

fn tokens(c: &mut Criterion) {
    let policy = TokenPolicy::new("https://auth.h200.example", "h200-api");
    let ed25519 = SigningKey::generate_ed25519("ed-1", [7; 32]).expect("a nonzero seed");
    let rsa_der = RS256KeyPair::generate(2048)
        .and_then(|key| key.to_der())
        .expect("RSA key generation");
    let rs256 = SigningKey::rs256_from_der("rsa-1", &rsa_der).expect("a fresh RSA key");
    let mut keys = KeySet::new();
    keys.insert(ed25519.verification_key());
    keys.insert(rs256.verification_key());
    let claims = claims();

    let ed_token = ed25519
        .issue(&policy, "user-42", "jti-1", &claims, NOW)
        .expect("issue");
    let rs_token = rs256
        .issue(&policy, "user-42", "jti-2", &claims, NOW)
        .expect("issue");

    c.bench_function("verify EdDSA access token", |b| {
        b.iter(|| keys.verify(black_box(&ed_token), &policy, TokenKind::Access, NOW + 60))
    });
    c.bench_function("verify RS256 access token", |b| {
        b.iter(|| keys.verify(black_box(&rs_token), &policy, TokenKind::Access, NOW + 60))
    });
    c.bench_function("issue EdDSA access token", |b| {
        b.iter(|| ed25519.issue(&policy, black_box("user-42"), "jti-3", &claims, NOW))
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
