//! Input: a stored session record (or anything a store may hand back).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        tokenkeeper::fuzzing::session_record(raw);
    }
});
