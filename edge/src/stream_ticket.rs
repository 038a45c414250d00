//! Socket tickets: a browser cannot set `Authorization` on a WebSocket, and a token in a URL
//! leaks into logs, so `POST /api/v1/ws-tickets` hands out a ticket instead. A ticket is the
//! caller's credential, the stream and an expiry sealed with AES-256-GCM under a key derived from
//! the edge's signing secret: opaque to whoever sees the URL, useless after 30 s or for another
//! stream, and good once (the edge state counts its uses, so every instance sharing that state
//! agrees). The credential inside is what every message of the socket is then checked with.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use shared::signing::MessageSigningKey;

use crate::ports::Entropy;

/// How long a ticket stays good.
pub const TICKET_TTL_MS: u64 = 30_000;

/// The label the ticket key is derived under.
const KEY_LABEL: &str = "h200 socket ticket v1";
/// Bytes of the AES-GCM nonce that leads a ticket.
const NONCE_LEN: usize = 12;
/// The longest ticket accepted (a ticket holds a token of a few hundred bytes).
const MAX_TICKET_CHARS: usize = 8192;

/// The credential a socket acts with, as the client presented it for the ticket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum SocketCredential {
    /// An access token (`Authorization: Bearer …`).
    Bearer(String),
    /// An API key (`X-API-Key`).
    ApiKey(String),
}

impl SocketCredential {
    /// The header field that presents this credential on a request.
    pub fn header(&self) -> (String, String) {
        match self {
            SocketCredential::Bearer(token) => ("authorization".into(), format!("Bearer {token}")),
            SocketCredential::ApiKey(key) => (
                crate::stage::authenticate::API_KEY_HEADER.into(),
                key.clone(),
            ),
        }
    }
}

impl std::fmt::Debug for SocketCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketCredential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            SocketCredential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

/// What a ticket seals.
#[derive(Serialize, Deserialize)]
struct Sealed {
    credential: SocketCredential,
    stream: String,
    expires_at_ms: u64,
}

/// An opened ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub credential: SocketCredential,
    pub stream: String,
    /// The key its uses are counted under in the edge state.
    pub use_key: String,
}

/// Why a ticket was refused (all answered `INVALID_TICKET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is malformed or was not issued by this edge")]
    Malformed,
    #[error("the ticket has expired")]
    Expired,
    #[error("the ticket is for another stream")]
    OtherStream,
}

/// Seals `credential` and `stream` into a ticket good until `now_ms` + [`TICKET_TTL_MS`].
pub fn issue(
    key: &MessageSigningKey,
    credential: SocketCredential,
    stream: &str,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> String {
    let sealed = Sealed {
        credential,
        stream: stream.to_owned(),
        expires_at_ms: now_ms + TICKET_TTL_MS,
    };
    let plaintext = serde_json::to_vec(&sealed).expect("a ticket serializes; this is a bug");
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut nonce);
    let cipher = cipher(key);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: KEY_LABEL.as_bytes(),
            },
        )
        .expect("AES-GCM seals any message this size; this is a bug");
    let mut ticket = nonce.to_vec();
    ticket.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(ticket)
}

/// Opens `ticket` for a socket on `stream` at `now_ms`.
pub fn open(
    key: &MessageSigningKey,
    ticket: &str,
    stream: &str,
    now_ms: u64,
) -> Result<Ticket, TicketError> {
    if ticket.len() > MAX_TICKET_CHARS {
        return Err(TicketError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(ticket)
        .map_err(|_| TicketError::Malformed)?;
    if bytes.len() <= NONCE_LEN {
        return Err(TicketError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let plaintext = cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: KEY_LABEL.as_bytes(),
            },
        )
        .map_err(|_| TicketError::Malformed)?;
    let sealed: Sealed = serde_json::from_slice(&plaintext).map_err(|_| TicketError::Malformed)?;
    if now_ms >= sealed.expires_at_ms {
        return Err(TicketError::Expired);
    }
    if sealed.stream != stream {
        return Err(TicketError::OtherStream);
    }
    Ok(Ticket {
        credential: sealed.credential,
        stream: sealed.stream,
        use_key: format!("socket-ticket:{}", hex::encode(nonce)),
    })
}

fn cipher(key: &MessageSigningKey) -> Aes256Gcm {
    let derived = key.derive_key(KEY_LABEL);
    Aes256Gcm::new_from_slice(&derived).expect("a 32-byte key suits AES-256; this is a bug")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CountingEntropy;

    fn key(fill: u8) -> MessageSigningKey {
        MessageSigningKey::new("k1", vec![fill; 32]).unwrap()
    }

    fn ticket(now_ms: u64) -> String {
        issue(
            &key(7),
            SocketCredential::Bearer("tok".into()),
            "s1",
            now_ms,
            &CountingEntropy::default(),
        )
    }

    #[test]
    fn a_ticket_opens_for_its_stream_until_it_expires() {
        let opened = open(&key(7), &ticket(1_000), "s1", 1_000 + TICKET_TTL_MS - 1).unwrap();
        assert_eq!(opened.credential, SocketCredential::Bearer("tok".into()));
        assert_eq!(opened.stream, "s1");
        assert_eq!(
            open(&key(7), &ticket(1_000), "s1", 1_000 + TICKET_TTL_MS),
            Err(TicketError::Expired)
        );
        assert_eq!(
            open(&key(7), &ticket(1_000), "s2", 1_000),
            Err(TicketError::OtherStream)
        );
    }

    #[test]
    fn a_ticket_hides_its_credential_and_refuses_tampering_and_other_keys() {
        let issued = ticket(1_000);
        assert!(!issued.contains("tok"));
        assert_eq!(
            open(&key(8), &issued, "s1", 1_000),
            Err(TicketError::Malformed)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&issued).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            open(&key(7), &tampered, "s1", 1_000),
            Err(TicketError::Malformed)
        );
        assert_eq!(
            open(&key(7), "%%", "s1", 1_000),
            Err(TicketError::Malformed)
        );
    }

    #[test]
    fn the_credential_never_shows_in_debug() {
        let shown = format!("{:?}", SocketCredential::ApiKey("ncs_secret".into()));
        assert!(!shown.contains("secret"));
    }
}
