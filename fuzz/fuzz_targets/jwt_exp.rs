//! Input: an access token (a JWT or anything else).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        tokenkeeper::fuzzing::jwt_exp(token);
    }
});
