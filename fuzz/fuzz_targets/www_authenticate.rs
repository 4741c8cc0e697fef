//! Input: one `WWW-Authenticate` header value per line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let values: Vec<&str> = text.split('\n').collect();
        tokenkeeper::fuzzing::www_authenticate(&values);
    }
});
