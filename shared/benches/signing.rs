//! Cost of signing a typical forwarded request (1 KiB body) at the edge and verifying it at the
//! backend with a fresh nonce each time. The verify clock advances one second per 1000 requests,
//! so the nonce store holds a steady ~60 000 live entries, as at 1000 requests per second.

use criterion::{Criterion, criterion_group, criterion_main};
use shared::signing::{
    MemoryNonceStore, MessageSigningKey, SignableRequest, SignatureVerifier, content_digest,
    sign_request,
};
use std::hint::black_box;

const NOW: u64 = 1_700_000_000;

fn signing(c: &mut Criterion) {
    let body = vec![b'7'; 1024];
    let key = MessageSigningKey::new("edge-2", vec![0x42; 32]).expect("a 32-byte secret is valid");
    let verifier = SignatureVerifier::new(key.clone(), None).expect("one key is a valid key set");

    c.bench_function("sign_request (1 KiB body, incl. content digest)", |b| {
        b.iter(|| {
            let digest = content_digest(black_box(&body));
            let request = request(&digest);
            sign_request(&request, &key, NOW, "0123456789abcdef0123456789abcdef").expect("signs")
        })
    });

    let mut store = MemoryNonceStore::new(1 << 20);
    let mut counter = 0u64;
    let digest = content_digest(&body);
    c.bench_function("verify (1 KiB body, fresh nonce, MemoryNonceStore)", |b| {
        b.iter_batched(
            || {
                counter += 1;
                let now = NOW + counter / 1000;
                let nonce = format!("{counter:032x}");
                (
                    now,
                    sign_request(&request(&digest), &key, now, &nonce).expect("signs"),
                )
            },
            |(now, signed)| {
                verifier
                    .verify(
                        &request(&digest),
                        Some(&signed.signature_input),
                        Some(&signed.signature),
                        black_box(&body),
                        now,
                        &mut store,
                    )
                    .expect("verifies")
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn request(digest: &str) -> SignableRequest<'_> {
    SignableRequest {
        method: "POST",
        path: "/api/v1/process_points",
        query: Some("stream=s1"),
        content_digest: Some(digest),
        principal: Some("user:0190f0c2-1f3e-7a2b-9c1d-5e6f7a8b9c0d"),
        request_id: "0190f0c2-1f3e-7a2b-9c1d-5e6f7a8b9c0d",
    }
}

criterion_group!(benches, signing);
criterion_main!(benches);
