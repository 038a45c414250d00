//! Edge → backend request signing: RFC 9421 HTTP Message Signatures with `hmac-sha256` over the
//! method, path, query, RFC 9530 content digest, principal and request id, with a replay window.
//!
//! The edge calls [`sign_request`] and sets the three returned header fields; the backend reads
//! them back into a [`SignableRequest`] and calls [`SignatureVerifier::verify`].

mod base;
mod error;
pub mod key_list;
mod structured_field;

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use base::{
    HttpRequestParts, SignatureInput, content_digest, parse_signature, parse_signature_input,
    signature_base, signature_header, signature_input_header, verify_content_digest,
};
pub use error::SignatureError;
pub use structured_field::{
    BareItem, MAX_HEADER_LEN, MAX_INNER_LIST_ITEMS, MAX_KEY_LEN, MAX_MEMBERS, MAX_PARAMS,
    Parameters,
};

/// The label of the edge's signature in `Signature-Input` and `Signature`.
pub const SIGNATURE_LABEL: &str = "sig1";
/// The `alg` parameter value of every signature the edge makes.
pub const ALGORITHM: &str = "hmac-sha256";
pub use crate::headers::REQUEST_ID_HEADER;
pub use crate::permissions::PRINCIPAL_HEADER;
/// Header carrying the RFC 9530 digest of the body.
pub const CONTENT_DIGEST_HEADER: &str = "content-digest";
/// How old a signature may be when it reaches the backend, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// How far in the future `created` may lie (clock skew between edge and backend), in seconds.
pub const DEFAULT_MAX_FUTURE_SKEW_SECS: u64 = 5;
/// Shortest accepted shared secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Longest accepted nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 128;

/// Covered components, in order, when the request carries a principal.
const COVERED_WITH_PRINCIPAL: [&str; 6] = [
    "@method",
    "@path",
    "@query",
    CONTENT_DIGEST_HEADER,
    PRINCIPAL_HEADER,
    REQUEST_ID_HEADER,
];
/// Covered components, in order, for an anonymous request (no principal header at all).
const COVERED_ANONYMOUS: [&str; 5] = [
    "@method",
    "@path",
    "@query",
    CONTENT_DIGEST_HEADER,
    REQUEST_ID_HEADER,
];

/// A shared HMAC secret with the key id that names it on the wire.
#[derive(Clone)]
pub struct MessageSigningKey {
    key_id: String,
    secret: Vec<u8>,
}

impl MessageSigningKey {
    /// A key; the secret must be at least [`MIN_SECRET_LEN`] bytes and the key id 1 to
    /// [`MAX_KEY_ID_LEN`] printable ASCII characters.
    pub fn new(
        key_id: impl Into<String>,
        secret: impl Into<Vec<u8>>,
    ) -> Result<Self, SignatureError> {
        let key_id = key_id.into();
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(SignatureError::InvalidKey(
                "the secret is shorter than 32 bytes",
            ));
        }
        if !is_wire_safe(&key_id, MAX_KEY_ID_LEN) {
            return Err(SignatureError::InvalidKey(
                "the key id must be 1 to 64 printable ASCII characters",
            ));
        }
        Ok(MessageSigningKey { key_id, secret })
    }

    /// The key id sent in the `keyid` parameter.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A 32-byte key for another purpose of the edge (sealing socket tickets), derived from this
    /// secret and `label` with HMAC-SHA256, so one configured secret serves both without either
    /// use revealing it.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        self.mac(label).finalize().into_bytes().into()
    }

    fn mac(&self, signature_base: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .expect("HMAC accepts keys of any length; this is a bug");
        mac.update(signature_base.as_bytes());
        mac
    }
}

impl std::fmt::Debug for MessageSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSigningKey")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn is_wire_safe(value: &str, max_len: usize) -> bool {
    !value.is_empty() && value.len() <= max_len && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// The signed parts of an edge → backend request: what the edge has when it forwards, and what
/// the backend reads back from the request it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The absolute path, still percent-encoded.
    pub path: &'a str,
    /// The query without its leading `?`; `None` when there is none.
    pub query: Option<&'a str>,
    /// The `Content-Digest` field value; the edge sets it from [`content_digest`] of the body.
    pub content_digest: Option<&'a str>,
    /// The `x-h200-principal` field value; `None` for an anonymous request (then the header is
    /// absent and not covered; a principal header that appears later makes the signature fail).
    pub principal: Option<&'a str>,
    /// The `x-request-id` field value.
    pub request_id: &'a str,
}

impl SignableRequest<'_> {
    fn covered(&self) -> &'static [&'static str] {
        if self.principal.is_some() {
            &COVERED_WITH_PRINCIPAL
        } else {
            &COVERED_ANONYMOUS
        }
    }

    fn base(&self, input: &SignatureInput) -> Result<String, SignatureError> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
        if let Some(digest) = self.content_digest {
            headers.push((CONTENT_DIGEST_HEADER, digest));
        }
        if let Some(principal) = self.principal {
            headers.push((PRINCIPAL_HEADER, principal));
        }
        headers.push((REQUEST_ID_HEADER, self.request_id));
        let parts = HttpRequestParts {
            method: self.method,
            scheme: "",
            authority: "",
            path: self.path,
            query: self.query,
            headers: &headers,
        };
        signature_base(&parts, input)
    }
}

/// The header fields the edge adds to a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Signature-Input` field value.
    pub signature_input: String,
    /// `Signature` field value.
    pub signature: String,
    /// `Content-Digest` field value (the one that was signed).
    pub content_digest: String,
}

/// Signs `request` with `key`, created at `created_unix_secs`, under a caller-chosen random
/// `nonce` (1 to 128 printable ASCII characters). The request must carry its content digest.
pub fn sign_request(
    request: &SignableRequest<'_>,
    key: &MessageSigningKey,
    created_unix_secs: u64,
    nonce: &str,
) -> Result<SignedHeaders, SignatureError> {
    if !is_wire_safe(nonce, MAX_NONCE_LEN) {
        return Err(SignatureError::InvalidNonce);
    }
    let content_digest = request
        .content_digest
        .ok_or_else(|| SignatureError::MissingComponent(CONTENT_DIGEST_HEADER.to_owned()))?;
    let created = i64::try_from(created_unix_secs)
        .map_err(|_| SignatureError::InvalidComponent("created is out of range"))?;
    let input = SignatureInput::covering(request.covered())
        .with_param("created", BareItem::Integer(created))
        .with_param("keyid", BareItem::String(key.key_id.clone()))
        .with_param("nonce", BareItem::String(nonce.to_owned()))
        .with_param("alg", BareItem::String(ALGORITHM.to_owned()));
    let base = request.base(&input)?;
    let signature = key.mac(&base).finalize().into_bytes();
    Ok(SignedHeaders {
        signature_input: signature_input_header(SIGNATURE_LABEL, &input)?,
        signature: format!("{SIGNATURE_LABEL}=:{}:", STANDARD.encode(signature)),
        content_digest: content_digest.to_owned(),
    })
}

/// Remembers nonces for as long as their signature could still be accepted.
pub trait NonceStore {
    /// Records `nonce` for `key_id` until `expires_at_unix`. Returns true if it was fresh and is
    /// now remembered, false if it was seen before (or cannot be remembered: fail closed).
    fn remember(&mut self, key_id: &str, nonce: &str, expires_at_unix: u64) -> bool;

    /// Lets a store drop entries that expired before `now_unix`; called before each
    /// [`NonceStore::remember`]. Stores with their own expiry can keep the default no-op.
    fn forget_expired(&mut self, _now_unix: u64) {}
}

/// An in-memory [`NonceStore`] for one backend process, bounded to `capacity` live nonces.
/// When full it refuses new nonces (the request is refused as a replay) rather than forgetting
/// live ones, which would reopen a replay window.
#[derive(Debug, Clone)]
pub struct MemoryNonceStore {
    /// Most live nonces held at once.
    capacity: usize,
    /// `(key id, nonce)` → expiry, for the replay lookup.
    expiry_of: HashMap<(String, String), u64>,
    /// The same entries ordered by expiry, for pruning.
    by_expiry: BTreeSet<(u64, String, String)>,
}

impl MemoryNonceStore {
    /// An empty store holding at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        MemoryNonceStore {
            capacity,
            expiry_of: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// How many nonces are remembered now.
    pub fn len(&self) -> usize {
        self.expiry_of.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_of.is_empty()
    }
}

impl NonceStore for MemoryNonceStore {
    fn remember(&mut self, key_id: &str, nonce: &str, expires_at_unix: u64) -> bool {
        let entry = (key_id.to_owned(), nonce.to_owned());
        if self.expiry_of.contains_key(&entry) || self.expiry_of.len() >= self.capacity {
            return false;
        }
        self.by_expiry
            .insert((expires_at_unix, entry.0.clone(), entry.1.clone()));
        self.expiry_of.insert(entry, expires_at_unix);
        true
    }

    fn forget_expired(&mut self, now_unix: u64) {
        while let Some(oldest) = self.by_expiry.first()
            && oldest.0 < now_unix
        {
            if let Some((_, key_id, nonce)) = self.by_expiry.pop_first() {
                self.expiry_of.remove(&(key_id, nonce));
            }
        }
    }
}

/// What a verified signature established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub key_id: String,
    pub created: u64,
    pub nonce: String,
}

/// The backend's check of edge signatures: up to two active keys (current and, during rotation,
/// previous), a 60 s window and 5 s of allowed clock skew.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    keys: Vec<MessageSigningKey>,
    window_secs: u64,
    max_future_skew_secs: u64,
}

impl SignatureVerifier {
    /// A verifier accepting `current` and, while a rotation is under way, `previous`; the two
    /// must have different key ids.
    pub fn new(
        current: MessageSigningKey,
        previous: Option<MessageSigningKey>,
    ) -> Result<Self, SignatureError> {
        if previous
            .as_ref()
            .is_some_and(|previous| previous.key_id == current.key_id)
        {
            return Err(SignatureError::InvalidKey(
                "the two active keys share a key id",
            ));
        }
        Ok(SignatureVerifier {
            keys: std::iter::once(current).chain(previous).collect(),
            window_secs: DEFAULT_WINDOW_SECS,
            max_future_skew_secs: DEFAULT_MAX_FUTURE_SKEW_SECS,
        })
    }

    /// Verifies the `sig1` signature of a received request, its content digest against `body`,
    /// its age, and that its nonce is new. The MAC is checked before the nonce is remembered, so
    /// a forged request cannot use up a nonce.
    pub fn verify(
        &self,
        request: &SignableRequest<'_>,
        signature_input: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix_secs: u64,
        nonce_store: &mut impl NonceStore,
    ) -> Result<VerifiedRequest, SignatureError> {
        let (Some(signature_input), Some(signature)) = (signature_input, signature) else {
            return Err(SignatureError::Missing);
        };
        let input = parse_signature_input(signature_input)?
            .into_iter()
            .find(|(label, _)| label == SIGNATURE_LABEL)
            .map(|(_, input)| input)
            .ok_or(SignatureError::UnexpectedProfile(
                "no sig1 in Signature-Input",
            ))?;
        let mac = parse_signature(signature)?
            .into_iter()
            .find(|(label, _)| label == SIGNATURE_LABEL)
            .map(|(_, mac)| mac)
            .ok_or(SignatureError::UnexpectedProfile("no sig1 in Signature"))?;
        if input.components != request.covered() {
            return Err(SignatureError::UnexpectedProfile(
                "the covered components differ",
            ));
        }
        let params = ProfileParams::read(&input)?;
        let key = self
            .keys
            .iter()
            .find(|key| key.key_id == params.key_id)
            .ok_or(SignatureError::UnknownKey)?;

        let base = request.base(&input)?;
        key.mac(&base)
            .verify_slice(&mac)
            .map_err(|_| SignatureError::Mismatch)?;
        let digest = request
            .content_digest
            .ok_or_else(|| SignatureError::MissingComponent(CONTENT_DIGEST_HEADER.to_owned()))?;
        verify_content_digest(digest, body)?;

        let expires_at = params.created.saturating_add(self.window_secs);
        if now_unix_secs > expires_at {
            return Err(SignatureError::Expired {
                created: params.created,
                now: now_unix_secs,
            });
        }
        if params.created > now_unix_secs.saturating_add(self.max_future_skew_secs) {
            return Err(SignatureError::CreatedInFuture {
                created: params.created,
                now: now_unix_secs,
            });
        }
        nonce_store.forget_expired(now_unix_secs);
        if !nonce_store.remember(&key.key_id, params.nonce, expires_at) {
            return Err(SignatureError::Replayed);
        }
        Ok(VerifiedRequest {
            key_id: key.key_id.clone(),
            created: params.created,
            nonce: params.nonce.to_owned(),
        })
    }
}

/// The four signature parameters of the edge profile, each present exactly once.
struct ProfileParams<'a> {
    created: u64,
    key_id: &'a str,
    nonce: &'a str,
}

impl<'a> ProfileParams<'a> {
    fn read(input: &'a SignatureInput) -> Result<Self, SignatureError> {
        if input.params.len() != 4 {
            return Err(SignatureError::UnexpectedProfile(
                "expected exactly alg, keyid, created and nonce",
            ));
        }
        let Some(BareItem::String(alg)) = input.param("alg") else {
            return Err(SignatureError::UnexpectedProfile("alg must be a string"));
        };
        if alg != ALGORITHM {
            return Err(SignatureError::UnexpectedProfile("alg must be hmac-sha256"));
        }
        let Some(BareItem::String(key_id)) = input.param("keyid") else {
            return Err(SignatureError::UnexpectedProfile("keyid must be a string"));
        };
        let Some(BareItem::String(nonce)) = input.param("nonce") else {
            return Err(SignatureError::UnexpectedProfile("nonce must be a string"));
        };
        if !is_wire_safe(nonce, MAX_NONCE_LEN) {
            return Err(SignatureError::InvalidNonce);
        }
        let Some(BareItem::Integer(created)) = input.param("created") else {
            return Err(SignatureError::UnexpectedProfile(
                "created must be an integer",
            ));
        };
        let created = u64::try_from(*created)
            .map_err(|_| SignatureError::UnexpectedProfile("created is negative"))?;
        Ok(ProfileParams {
            created,
            key_id,
            nonce,
        })
    }
}

#[cfg(test)]
mod tests;
