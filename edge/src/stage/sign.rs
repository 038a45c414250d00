//! Stage 10: what goes to the backend. Only a few client header fields cross; credentials are
//! stripped (except the refresh token on `/auth/refresh`); every request is signed (RFC 9421)
//! with the edge key, carrying the principal and the request id.

use shared::ErrorCode;
use shared::headers::REQUEST_ID_HEADER;
use shared::permissions::{PRINCIPAL_HEADER, Principal};
use shared::signing::{
    CONTENT_DIGEST_HEADER, MessageSigningKey, SignableRequest, content_digest, sign_request,
};

use super::Refusal;
use crate::message::EdgeRequest;
use crate::ports::{Entropy, UpstreamRequest};

/// The route whose `Authorization` header is forwarded as it is: the backend verifies the
/// refresh token itself.
pub const REFRESH_PATH: &str = "/auth/refresh";

/// Client header fields the backend may see.
const FORWARDED: &[&str] = &["content-type", "accept", "accept-language", "user-agent"];

/// A request on its way to the backend, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound<'a> {
    pub method: &'a str,
    /// The absolute path, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: Vec<u8>,
    /// `None` only for the edge's own calls (`/internal/…`, JWKS).
    pub principal: Option<&'a Principal>,
    pub request_id: &'a str,
    /// Header fields to pass along (see [`forwarded_headers`]).
    pub headers: Vec<(String, String)>,
}

/// The client header fields that cross to the backend: content type, accept, language and user
/// agent, plus `Authorization` on [`REFRESH_PATH`] only. `X-API-Key` never crosses.
pub fn forwarded_headers(request: &EdgeRequest) -> Vec<(String, String)> {
    let keep_authorization = request.path == REFRESH_PATH;
    request
        .headers
        .iter()
        .filter(|(name, _)| {
            FORWARDED.iter().any(|f| name.eq_ignore_ascii_case(f))
                || (keep_authorization && name.eq_ignore_ascii_case("authorization"))
        })
        .cloned()
        .collect()
}

/// Signs `outbound` with `key` at `now_ms` under a fresh random nonce and returns the request
/// to send. A signing failure is the edge's own fault: `INTERNAL`.
pub fn sign(
    outbound: Outbound<'_>,
    key: &MessageSigningKey,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> Result<UpstreamRequest, Refusal> {
    let mut nonce = [0u8; 16];
    entropy.fill(&mut nonce);
    let nonce = hex::encode(nonce);
    let digest = content_digest(&outbound.body);
    let principal = outbound.principal.map(Principal::encode_header);
    let signable = SignableRequest {
        method: outbound.method,
        path: outbound.path,
        query: outbound.query,
        content_digest: Some(&digest),
        principal: principal.as_deref(),
        request_id: outbound.request_id,
    };
    let signed = sign_request(&signable, key, now_ms / 1000, &nonce)
        .map_err(|e| Refusal::new(ErrorCode::Internal).with_detail(e.to_string()))?;
    let mut headers = outbound.headers;
    headers.push(("signature-input".into(), signed.signature_input));
    headers.push(("signature".into(), signed.signature));
    headers.push((CONTENT_DIGEST_HEADER.into(), signed.content_digest));
    headers.push((REQUEST_ID_HEADER.into(), outbound.request_id.to_owned()));
    if let Some(principal) = principal {
        headers.push((PRINCIPAL_HEADER.into(), principal));
    }
    let path_and_query = match outbound.query {
        Some(query) => format!("{}?{query}", outbound.path),
        None => outbound.path.to_owned(),
    };
    Ok(UpstreamRequest {
        method: outbound.method.to_owned(),
        path_and_query,
        headers,
        body: outbound.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::signing::{MemoryNonceStore, SignatureVerifier};

    struct Counter(std::sync::atomic::AtomicU8);
    impl Entropy for Counter {
        fn fill(&self, buf: &mut [u8]) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            buf.fill(n);
        }
    }

    fn header<'a>(request: &'a UpstreamRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn client(path: &str) -> EdgeRequest {
        EdgeRequest {
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: vec![
                ("authorization".into(), "Bearer t".into()),
                ("x-api-key".into(), "ncs_x".into()),
                ("content-type".into(), "application/json".into()),
                ("cookie".into(), "s=1".into()),
            ],
            client_ip: "203.0.113.9".into(),
        }
    }

    #[test]
    fn credentials_cross_only_on_refresh() {
        let names = |r: &EdgeRequest| -> Vec<String> {
            forwarded_headers(r).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&client("/api/v1/rules")), vec!["content-type"]);
        assert_eq!(
            names(&client(REFRESH_PATH)),
            vec!["authorization", "content-type"]
        );
    }

    #[test]
    fn the_backend_verifier_accepts_what_the_edge_signs_once() {
        let key = MessageSigningKey::new("edge-1", vec![9u8; 32]).expect("key");
        let verifier = SignatureVerifier::new(key.clone(), None).expect("verifier");
        let principal = Principal::anonymous();
        let outbound = Outbound {
            method: "POST",
            path: "/auth/login",
            query: Some("x=1"),
            body: b"{}".to_vec(),
            principal: Some(&principal),
            request_id: "rid-1",
            headers: Vec::new(),
        };
        let now_ms = 1_700_000_000_000;
        let entropy = Counter(std::sync::atomic::AtomicU8::new(1));
        let request = sign(outbound, &key, now_ms, &entropy).expect("signed");
        assert_eq!(request.path_and_query, "/auth/login?x=1");
        let signable = SignableRequest {
            method: "POST",
            path: "/auth/login",
            query: Some("x=1"),
            content_digest: header(&request, CONTENT_DIGEST_HEADER),
            principal: header(&request, PRINCIPAL_HEADER),
            request_id: "rid-1",
        };
        let mut nonces = MemoryNonceStore::new(16);
        let verify = |nonces: &mut MemoryNonceStore| {
            verifier.verify(
                &signable,
                header(&request, "signature-input"),
                header(&request, "signature"),
                &request.body,
                now_ms / 1000,
                nonces,
            )
        };
        assert!(verify(&mut nonces).is_ok());
        let replay = verify(&mut nonces).expect_err("replayed");
        assert_eq!(replay.code(), ErrorCode::ReplayedRequest);
    }
}
