//! Arbitrary bytes through every strict body parser: JSON bodies, the login form and the
//! analysis form fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::body::{
    AnalysisOptions, LoginRequest, ProcessPointsRequest, RuleDefinition, decode_form, parse_valid,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_valid::<ProcessPointsRequest>(data);
    let _ = parse_valid::<RuleDefinition>(data);
    let _ = LoginRequest::from_form(data);
    if let Ok(fields) = decode_form(data) {
        let _ = AnalysisOptions::from_fields(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    }
});
