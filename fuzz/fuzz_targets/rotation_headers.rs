//! Input: line 1 the rotated token header, line 2 the expiry header, line 3 `Date`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut lines = text.splitn(3, '\n');
        let (token, expiry, date) = (lines.next(), lines.next(), lines.next());
        tokenkeeper::fuzzing::rotation(token, expiry, date);
    }
});
