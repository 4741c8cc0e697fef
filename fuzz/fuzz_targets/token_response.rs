//! Input: line 1 the HTTP status, line 2 the `Date` header (may be empty), then the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let status = lines
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(200);
    let date = lines
        .next()
        .and_then(|d| std::str::from_utf8(d).ok())
        .filter(|d| !d.is_empty());
    let body = lines.next().unwrap_or_default();
    tokenkeeper::fuzzing::token_response(status, date, body);
});
