//! Measurement 3, revocation storm: N requests in flight with one token, which the
//! server has just revoked, so all get 401, recover and replay once. Reports the
//! token requests made to recover; each request's wait from its 401 to a usable
//! token (p99, and that minus one token round trip: the floor, since recovering
//! needs one); and the burst's p99 with a valid token and in the storm.
//!
//! tokenkeeper's requests go through `Session::handle_unauthorized`, the recovery
//! `Session::send` runs, called by hand so the wait can be timed on its own.

use crate::admin::{BoxError, Server};
use crate::peer::MutexCache;
use crate::stats::{millis, quantile, report};
use reqwest::header::WWW_AUTHENTICATE;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenkeeper::{AuthClient, AuthConfig, SecretString, Session};
use tokio::sync::Barrier;

/// One request's end: its final status, its latency from the moment it was sent and,
/// if it got a 401, how long it then waited for a usable token.
struct Outcome {
    status: u16,
    latency: Duration,
    recovery: Option<Duration>,
}

impl Outcome {
    fn done(status: reqwest::StatusCode, sent: Instant) -> Self {
        Self {
            status: status.as_u16(),
            latency: sent.elapsed(),
            recovery: None,
        }
    }
}

/// What a burst measured: every request's latency, the recovery waits, failures.
struct Burst {
    latencies: Vec<Duration>,
    recoveries: Vec<Duration>,
    failed: usize,
}

/// `n` requests at once. Each request takes its token, then waits at `ready` until
/// all have one, so in a storm every request goes out with the revoked token.
async fn burst<F, Fut>(n: usize, request: F) -> Burst
where
    F: Fn(Arc<Barrier>) -> Fut,
    Fut: Future<Output = Result<Outcome, BoxError>> + Send + 'static,
{
    let ready = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(request(ready.clone()))).collect();
    let mut result = Burst {
        latencies: Vec::with_capacity(n),
        recoveries: Vec::new(),
        failed: 0,
    };
    for task in tasks {
        match task.await.expect("request task") {
            Ok(Outcome {
                status: 200,
                latency,
                recovery,
            }) => {
                result.latencies.push(latency);
                result.recoveries.extend(recovery);
            }
            _ => result.failed += 1,
        }
    }
    result
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

fn report_storm(implementation: &str, valid: &Burst, storm: &Burst, requests: u64, rtt: f64) {
    report(implementation, "storm.token_requests", requests as f64);
    report(implementation, "storm.failed", storm.failed as f64);
    report(implementation, "storm.recovered", storm.recoveries.len() as f64);
    report(implementation, "storm.valid_p99_ms", p99(&valid.latencies));
    report(implementation, "storm.p99_ms", p99(&storm.latencies));
    report(implementation, "storm.recovery_p99_ms", p99(&storm.recoveries));
    report(implementation, "storm.added_over_rtt_ms", p99(&storm.recoveries) - rtt);
}

async fn tokenkeeper_request(
    session: Arc<Session>,
    http: reqwest::Client,
    url: String,
    ready: Arc<Barrier>,
) -> Result<Outcome, BoxError> {
    // Every request reaches the barrier, even one that failed, so none waits forever.
    let token = session.access_token().await;
    ready.wait().await;
    let token = token?;
    let sent = Instant::now();
    let response = http.get(&url).bearer_auth(token.expose_secret()).send().await?;
    if response.status() != 401 {
        return Ok(Outcome::done(response.status(), sent));
    }
    let challenges: Vec<String> = (response.headers().get_all(WWW_AUTHENTICATE).iter())
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    let t0 = Instant::now();
    let fresh = (session.handle_unauthorized(&token, &challenges).await?).ok_or("a 401 not about the token")?;
    let recovery = Some(t0.elapsed());
    let response = http.get(&url).bearer_auth(fresh.expose_secret()).send().await?;
    Ok(Outcome {
        recovery,
        ..Outcome::done(response.status(), sent)
    })
}

async fn tokenkeeper(server: &Server, n: usize, rtt: f64) -> Result<(), BoxError> {
    let config =
        AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"));
    let client = AuthClient::new(config)?;
    let session = client.client_credentials_session();
    let send = |ready| tokenkeeper_request(session.clone(), client.http().clone(), server.resource(), ready);
    let token = session.access_token().await?;
    burst(n, send).await; // opens the connections, so both timed bursts find them warm
    let valid = burst(n, send).await;
    server.revoke(token.expose_secret()).await?;
    let before = server.token_requests().await?;
    let storm = burst(n, send).await;
    let requests = server.token_requests().await? - before;
    report_storm("tokenkeeper", &valid, &storm, requests, rtt);
    Ok(())
}

/// Seed 003's reactive refresh: on a 401, drop the token, get one, retry once.
async fn mutex_send(cache: Arc<MutexCache>, server: Server, ready: Arc<Barrier>) -> Result<Outcome, BoxError> {
    let token = cache.get().await;
    ready.wait().await;
    let token = token?;
    let sent = Instant::now();
    let response = server.http.get(server.resource()).bearer_auth(&token).send().await?;
    if response.status() != 401 {
        return Ok(Outcome::done(response.status(), sent));
    }
    let t0 = Instant::now();
    cache.invalidate();
    let token = cache.get().await?;
    let recovery = Some(t0.elapsed());
    let response = server.http.get(server.resource()).bearer_auth(&token).send().await?;
    Ok(Outcome {
        recovery,
        ..Outcome::done(response.status(), sent)
    })
}

async fn mutex(server: &Server, n: usize, rtt: f64) -> Result<(), BoxError> {
    let cache = Arc::new(MutexCache::new(server.clone()));
    let send = |ready| mutex_send(cache.clone(), server.clone(), ready);
    let token = cache.get().await?;
    burst(n, send).await;
    let valid = burst(n, send).await;
    server.revoke(&token).await?;
    let before = server.token_requests().await?;
    let storm = burst(n, send).await;
    let requests = server.token_requests().await? - before;
    report_storm("mutex", &valid, &storm, requests, rtt);
    Ok(())
}

pub async fn run(server: &Server, n: usize) -> Result<(), BoxError> {
    let rtt = token_round_trip(server).await?;
    report("tokenkeeper", "storm.token_rtt_ms", rtt);
    report("mutex", "storm.token_rtt_ms", rtt);
    tokenkeeper(server, n, rtt).await?;
    mutex(server, n, rtt).await
}
