//! RFC 6238 time-based one-time passwords for MFA, and the base32 secrets authenticator apps read.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// Seconds per time step (RFC 6238 default, and what authenticator apps assume).
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps either side of now that still verify, to absorb clock skew between phone and server.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of a freshly generated secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The HMAC behind the codes. Authenticator apps assume SHA-1; SHA-256 is kept for the RFC vectors
/// and for clients that support it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
}

/// The code for time step `counter` (RFC 4226 HOTP with dynamic truncation).
pub fn hotp(secret: &[u8], counter: u64, digits: u32, algorithm: TotpAlgorithm) -> u32 {
    let message = counter.to_be_bytes();
    let digest: Vec<u8> = match algorithm {
        TotpAlgorithm::Sha1 => {
            let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
                .expect("HMAC takes keys of any length; this is a bug");
            mac.update(&message);
            mac.finalize().into_bytes().to_vec()
        }
        TotpAlgorithm::Sha256 => {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
                .expect("HMAC takes keys of any length; this is a bug");
            mac.update(&message);
            mac.finalize().into_bytes().to_vec()
        }
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The code valid at `unix_secs`.
pub fn totp(secret: &[u8], unix_secs: u64, digits: u32, algorithm: TotpAlgorithm) -> u32 {
    hotp(secret, unix_secs / STEP_SECS, digits, algorithm)
}

/// The six-digit code valid at `unix_secs`, zero-padded as users type it.
pub fn current_code(secret: &[u8], unix_secs: u64) -> String {
    format!(
        "{:06}",
        totp(secret, unix_secs, DIGITS, TotpAlgorithm::Sha1)
    )
}

/// Checks a typed code against the steps around `unix_secs`.
///
/// Returns the matching time step, so the caller can remember it and refuse the same code twice
/// (RFC 6238 §5.2); `None` when the code is malformed or matches no step in the window. Steps at
/// or before `last_used_step` never match.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = unix_secs / STEP_SECS;
    let first = now_step.saturating_sub(SKEW_STEPS);
    let mut matched = None;
    // Walk the whole window every time so timing does not tell which step matched.
    for step in first..=now_step + SKEW_STEPS {
        let expected = format!("{:06}", hotp(secret, step, DIGITS, TotpAlgorithm::Sha1));
        let fresh = last_used_step.is_none_or(|last| step > last);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as `otpauth://` secrets are written.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[((buffer >> bits) & 0x1f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

/// Decodes base32 (case-insensitive, padding and spaces ignored); `None` on any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        if c == b'=' || c == b' ' {
            continue;
        }
        let value = BASE32_ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://totp/...` URI an authenticator app scans as a QR code.
pub fn provisioning_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(issuer),
        percent_encode(account),
        base32_encode(secret),
        percent_encode(issuer),
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_SEED: &[u8] = b"12345678901234567890";
    const SHA256_SEED: &[u8] = b"12345678901234567890123456789012";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let cases: [(u64, u32, u32); 6] = [
            (59, 94287082, 46119246),
            (1111111109, 7081804, 68084774),
            (1111111111, 14050471, 67062674),
            (1234567890, 89005924, 91819424),
            (2000000000, 69279037, 90698825),
            (20000000000, 65353130, 77737706),
        ];
        for (time, sha1, sha256) in cases {
            assert_eq!(
                totp(SHA1_SEED, time, 8, TotpAlgorithm::Sha1),
                sha1,
                "SHA-1 at {time}"
            );
            assert_eq!(
                totp(SHA256_SEED, time, 8, TotpAlgorithm::Sha256),
                sha256,
                "SHA-256 at {time}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(SHA1_SEED, counter as u64, 6, TotpAlgorithm::Sha1),
                code
            );
        }
    }

    #[test]
    fn verify_accepts_one_step_of_skew_and_refuses_reuse() {
        let now = 1_700_000_000;
        let code = current_code(SHA1_SEED, now);
        let step = verify(SHA1_SEED, &code, now, None).expect("current code verifies");
        assert_eq!(step, now / STEP_SECS);
        assert_eq!(verify(SHA1_SEED, &code, now + STEP_SECS, None), Some(step));
        assert_eq!(
            verify(SHA1_SEED, &code, now + 2 * STEP_SECS + 1, None),
            None
        );
        assert_eq!(
            verify(SHA1_SEED, &code, now, Some(step)),
            None,
            "a used code is refused"
        );
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let now = 1_700_000_000;
        for bad in ["", "12345", "1234567", "12a456", " 123456"] {
            assert_eq!(verify(SHA1_SEED, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_matches_rfc4648_and_round_trips() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ1W"), None);
        let secret: Vec<u8> = (0u8..20).collect();
        assert_eq!(base32_decode(&base32_encode(&secret)).unwrap(), secret);
    }

    #[test]
    fn provisioning_uri_escapes_labels() {
        let uri = provisioning_uri("H200 System", "ana@example.com", b"12345");
        assert_eq!(
            uri,
            "otpauth://totp/H200%20System:ana%40example.com?secret=GEZDGNBV&issuer=H200%20System&algorithm=SHA1&digits=6&period=30"
        );
    }
}
