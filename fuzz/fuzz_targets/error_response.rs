//! Input: line 1 the HTTP status, line 2 a secret the request carried, then the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let status = lines
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(400);
    let secret = lines
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or("s3cret");
    let body = lines.next().unwrap_or_default();
    tokenkeeper::fuzzing::error_response(status, body, secret);
});
