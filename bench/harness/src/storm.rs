//! Measurement 3, revocation storm: N requests in flight with one token, which the
//! server has just revoked, so all get 401. Reports the token requests made to
//! recover and how much the storm adds to the burst's p99 latency: p99 of the
//! storm minus p99 of the same burst with a valid token, and that minus one token
//! round trip (the floor: recovering needs one).

use crate::admin::{BoxError, Server};
use crate::peer::MutexCache;
use crate::stats::{millis, quantile, report};
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenkeeper::{AuthClient, AuthConfig, SecretString};

/// `n` requests at once; each one's latency and whether it finally got a 200.
async fn burst<F, Fut>(n: usize, request: F) -> (Vec<Duration>, usize)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u16, BoxError>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let fut = request();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let status = fut.await;
                (t0.elapsed(), matches!(status, Ok(200)))
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for task in tasks {
        let (latency, ok) = task.await.expect("request task");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    (latencies, failed)
}

fn p99(latencies: &[Duration]) -> f64 {
    quantile(&mut millis(latencies), 0.99)
}

/// The median of sequential token requests on loopback.
async fn token_round_trip(server: &Server) -> Result<f64, BoxError> {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        server.fetch_token().await?;
        samples.push(t0.elapsed());
    }
    Ok(quantile(&mut millis(&samples), 0.5))
}

fn report_storm(implementation: &str, valid: &[Duration], storm: &[Duration], requests: u64, failed: usize, rtt: f64) {
    let added = p99(storm) - p99(valid);
    report(implementation, "storm.token_requests", requests as f64);
    report(implementation, "storm.failed", failed as f64);
    report(implementation, "storm.valid_p99_ms", p99(valid));
    report(implementation, "storm.p99_ms", p99(storm));
    report(implementation, "storm.added_p99_ms", added);
    report(implementation, "storm.added_over_rtt_ms", added - rtt);
}

async fn tokenkeeper(server: &Server, n: usize, rtt: f64) -> Result<(), BoxError> {
    let config =
        AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"));
    let client = AuthClient::new(config)?;
    let session = client.client_credentials_session();
    let send = || {
        let (session, request) = (session.clone(), client.http().get(server.resource()));
        async move { Ok(session.send(request).await?.status().as_u16()) }
    };
    let token = session.access_token().await?;
    burst(n, send).await; // opens the connections, so both timed bursts find them warm
    let (valid, _) = burst(n, send).await;
    server.revoke(token.expose_secret()).await?;
    let before = server.token_requests().await?;
    let (storm, failed) = burst(n, send).await;
    let requests = server.token_requests().await? - before;
    report_storm("tokenkeeper", &valid, &storm, requests, failed, rtt);
    Ok(())
}

/// Seed 003's reactive refresh: on a 401, drop the token, get one, retry once.
async fn mutex_send(cache: Arc<MutexCache>, server: Server) -> Result<u16, BoxError> {
    let token = cache.get().await?;
    let response = server.http.get(server.resource()).bearer_auth(&token).send().await?;
    if response.status() != 401 {
        return Ok(response.status().as_u16());
    }
    cache.invalidate();
    let token = cache.get().await?;
    let response = server.http.get(server.resource()).bearer_auth(&token).send().await?;
    Ok(response.status().as_u16())
}

async fn mutex(server: &Server, n: usize, rtt: f64) -> Result<(), BoxError> {
    let cache = Arc::new(MutexCache::new(server.clone()));
    let send = || mutex_send(cache.clone(), server.clone());
    let token = cache.get().await?;
    burst(n, send).await;
    let (valid, _) = burst(n, send).await;
    server.revoke(&token).await?;
    let before = server.token_requests().await?;
    let (storm, failed) = burst(n, send).await;
    let requests = server.token_requests().await? - before;
    report_storm("mutex", &valid, &storm, requests, failed, rtt);
    Ok(())
}

pub async fn run(server: &Server, n: usize) -> Result<(), BoxError> {
    let rtt = token_round_trip(server).await?;
    report("tokenkeeper", "storm.token_rtt_ms", rtt);
    report("mutex", "storm.token_rtt_ms", rtt);
    tokenkeeper(server, n, rtt).await?;
    mutex(server, n, rtt).await
}
