//! Measurement 2, token economy: N callers at once on an empty cache, and on a cache
//! whose token is still valid but inside the refresh margin. Reports the token
//! requests the server saw and the callers' waits.

use crate::admin::{BoxError, Server};
use crate::peer::MutexCache;
use crate::stats::{millis, quantile, report};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokenkeeper::{AuthClient, AuthConfig, ManualClock, SecretString};

/// Starts `n` callers at once and returns each one's wait; panics if a caller failed.
/// Every caller is spawned and parked behind a gate first, so the first one's token
/// request cannot finish before the last one has started.
async fn callers<F, Fut>(n: usize, call: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let (open, gate) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let fut = call();
            let mut gate = gate.clone();
            tokio::spawn(async move {
                gate.wait_for(|open| *open).await.expect("gate");
                let t0 = Instant::now();
                fut.await.map(|()| t0.elapsed())
            })
        })
        .collect();
    open.send_replace(true);
    let mut waits = Vec::with_capacity(n);
    for task in tasks {
        waits.push(task.await.expect("caller task").expect("caller got a token"));
    }
    waits
}

fn report_round(implementation: &str, label: &str, requests: u64, waits: &[Duration]) {
    let mut ms = millis(waits);
    report(implementation, &format!("{label}.token_requests"), requests as f64);
    report(implementation, &format!("{label}.p50_ms"), quantile(&mut ms, 0.5));
    report(implementation, &format!("{label}.p99_ms"), quantile(&mut ms, 0.99));
    report(implementation, &format!("{label}.max_ms"), quantile(&mut ms, 1.0));
}

fn config(server: &Server) -> AuthConfig {
    AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"))
}

async fn tokenkeeper(server: &Server, n: usize, expiring: bool) -> Result<(u64, Vec<Duration>), BoxError> {
    let clock = Arc::new(ManualClock::starting_now());
    let client = AuthClient::new(config(server).clock(clock.clone()))?;
    let session = client.client_credentials_session();
    if expiring {
        session.access_token().await?;
        // Still valid for two minutes, so inside the 5-minute refresh margin.
        clock.advance(Duration::from_secs(3600 - 120));
    }
    let before = server.token_requests().await?;
    let waits = callers(n, || {
        let session = session.clone();
        async move { session.access_token().await.map(drop).map_err(Into::into) }
    })
    .await;
    session.wait_for_refresh().await;
    Ok((server.token_requests().await? - before, waits))
}

async fn mutex(server: &Server, n: usize, expiring: bool) -> Result<(u64, Vec<Duration>), BoxError> {
    let cache = Arc::new(MutexCache::new(server.clone()));
    if expiring {
        let (token, _) = server.fetch_token().await?;
        cache.set(token, SystemTime::now() + Duration::from_secs(120));
    }
    let before = server.token_requests().await?;
    let waits = callers(n, || {
        let cache = cache.clone();
        async move { cache.get().await.map(drop) }
    })
    .await;
    Ok((server.token_requests().await? - before, waits))
}

pub async fn run(server: &Server, sizes: &[usize]) -> Result<(), BoxError> {
    for &n in sizes {
        for (mode, expiring) in [("empty", false), ("expiring", true)] {
            let label = format!("economy.{mode}.n{n}");
            let (requests, waits) = tokenkeeper(server, n, expiring).await?;
            report_round("tokenkeeper", &label, requests, &waits);
            let (requests, waits) = mutex(server, n, expiring).await?;
            report_round("mutex", &label, requests, &waits);
        }
    }
    Ok(())
}
