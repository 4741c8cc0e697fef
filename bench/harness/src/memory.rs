//! Measurement 4: resident memory per idle session (one holding a cached token) at a
//! given session count. `bench/run` calls it in a fresh process per count, so each
//! figure is a delta from the same starting point.

use crate::admin::{BoxError, Server};
use crate::stats::report;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokenkeeper::{AuthClient, AuthConfig, SecretString, TokenParams};

/// The process's resident set size in bytes (Linux).
fn rss_bytes() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

pub async fn run(server: &Server, sessions: usize) -> Result<(), BoxError> {
    let config =
        AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"));
    let client = AuthClient::new(config)?;
    // One session first, so the connection pool, TLS set-up and allocator arenas are
    // in the baseline rather than in the per-session figure.
    let warm = client.client_credentials_session_with(TokenParams::new().audience("warm-up"));
    warm.access_token().await?;
    let before = rss_bytes()?;

    // Each audience is a distinct identity, hence a distinct session with its own token.
    let held: Vec<_> = stream::iter(0..sessions)
        .map(|i| {
            let session = client.client_credentials_session_with(TokenParams::new().audience(format!("aud-{i}")));
            async move { session.access_token().await.map(|_| session) }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;

    let after = rss_bytes()?;
    let per_session = after.saturating_sub(before) as f64 / sessions as f64;
    report(
        "tokenkeeper",
        &format!("memory.n{sessions}.bytes_per_session"),
        per_session,
    );
    report(
        "tokenkeeper",
        &format!("memory.n{sessions}.rss_delta_mib"),
        (after - before.min(after)) as f64 / 1048576.0,
    );
    drop(held);
    Ok(())
}
