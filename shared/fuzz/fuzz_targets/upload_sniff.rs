//! Arbitrary bytes through the upload policy, with and without a declared type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::upload::{MAX_IMAGE_DIMENSION, inspect};

fuzz_target!(|data: &[u8]| {
    for declared in [Some("image/png"), None] {
        if let Ok(info) = inspect(data, declared) {
            assert!((1..=MAX_IMAGE_DIMENSION).contains(&info.width));
            assert!((1..=MAX_IMAGE_DIMENSION).contains(&info.height));
        }
    }
});
