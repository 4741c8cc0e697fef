//! Input: a `Retry-After` header value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        tokenkeeper::fuzzing::retry_after(value);
    }
});
