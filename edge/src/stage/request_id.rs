//! Stage 1: every request gets an id, the client's when it is well formed.

use crate::ports::Entropy;

/// The request id to use: the client's `X-Request-ID` when valid, else a fresh UUIDv4.
pub fn assign(client: Option<&str>, entropy: &dyn Entropy) -> String {
    let mut random = [0u8; 16];
    if client.is_none_or(|id| !shared::headers::is_valid_request_id(id)) {
        entropy.fill(&mut random);
    }
    shared::headers::request_id(client, random)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Entropy for Fixed {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(0xab);
        }
    }

    #[test]
    fn a_valid_client_id_is_kept_and_a_bad_one_replaced() {
        assert_eq!(assign(Some("req-42"), &Fixed), "req-42");
        let fresh = assign(Some("bad id with spaces"), &Fixed);
        assert_eq!(fresh, "abababab-abab-4bab-abab-abababababab");
        assert_eq!(assign(None, &Fixed), fresh);
    }
}
