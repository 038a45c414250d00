//! Feeds arbitrary bytes to the `Signature-Input`, `Signature` and `Content-Digest` parsers.
#![no_main]

use shared::signing::{parse_signature, parse_signature_input, verify_content_digest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_signature_input(&text);
    let _ = parse_signature(&text);
    let _ = verify_content_digest(&text, data);
});
