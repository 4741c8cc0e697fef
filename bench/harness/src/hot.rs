//! Measurement 1: the cached `access_token()` on 1 and 2 threads, next to the mutex
//! cache, plus where tokenkeeper's time goes (clock read, copy, atomic load).
//!
//! Timing one ~50 ns call with `Instant::now()` would measure the timer, so calls run
//! in batches of `BATCH`: each sample is one batch's time divided by `BATCH`. The p99
//! is therefore the p99 of 256-call means (it catches preemption and contention, not a
//! single slow call).

use crate::admin::Server;
use crate::peer::MutexCache;
use crate::stats::{quantile, report};
use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};
use tokenkeeper::{AccessToken, AuthClient, AuthConfig, Clock, SecretString, Session, SystemClock};

const BATCH: u32 = 256;

/// What one thread measured.
struct Run {
    samples: Vec<f64>,
    calls: u64,
    elapsed: Duration,
}

fn run_for(duration: Duration, call: &(impl Fn() + Sync)) -> Run {
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            call();
        }
        samples.push(t0.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    let calls = samples.len() as u64 * u64::from(BATCH);
    Run {
        samples,
        calls,
        elapsed: started.elapsed(),
    }
}

/// Runs `call` on `threads` threads at once; returns all samples and calls per second.
fn measure(threads: usize, duration: Duration, call: impl Fn() + Sync) -> (Vec<f64>, f64) {
    // Warm caches and the branch predictor first.
    run_for(duration / 10, &call);
    let barrier = Barrier::new(threads);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    run_for(duration, &call)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let calls: u64 = runs.iter().map(|r| r.calls).sum();
    let elapsed = runs.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let samples = runs.into_iter().flat_map(|r| r.samples).collect();
    (samples, calls as f64 / elapsed.as_secs_f64())
}

fn report_case(implementation: &str, duration: Duration, call: impl Fn() + Sync) {
    let mut throughput = [0.0; 2];
    for threads in [1, 2] {
        let (mut samples, per_sec) = measure(threads, duration, &call);
        report(
            implementation,
            &format!("hot.t{threads}.median_ns"),
            quantile(&mut samples, 0.5),
        );
        report(
            implementation,
            &format!("hot.t{threads}.p99_ns"),
            quantile(&mut samples, 0.99),
        );
        throughput[threads - 1] = per_sec;
    }
    report(implementation, "hot.t2_speedup", throughput[1] / throughput[0]);
}

fn cached_call(session: &Session) -> AccessToken {
    // The cached path completes on its first poll; no executor is involved.
    match session.access_token().now_or_never() {
        Some(Ok(token)) => token,
        _ => panic!("the token must be cached and fresh during the benchmark"),
    }
}

pub fn run(server: &Server, runtime: &tokio::runtime::Runtime, duration: Duration) {
    let config =
        AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"));
    let client = AuthClient::new(config).expect("valid config");
    let session = client.client_credentials_session();
    let token = runtime.block_on(session.access_token()).expect("first token");
    report_case("tokenkeeper", duration, || drop(black_box(cached_call(&session))));

    let peer = MutexCache::new(server.clone());
    runtime.block_on(peer.get()).expect("peer token");
    report_case("mutex", duration, || drop(black_box(peer.cached())));

    // Where tokenkeeper's time goes: each part of the cached path alone, one thread.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let swap = ArcSwapOption::new(Some(Arc::new(token.clone())));
    let parts: [(&str, &(dyn Fn() + Sync)); 5] = [
        ("parts.clock_ns", &|| {
            black_box(SystemTime::now());
        }),
        ("parts.dyn_clock_ns", &|| {
            black_box(black_box(&clock).now());
        }),
        ("parts.arc_swap_load_ns", &|| {
            black_box(swap.load().is_some());
        }),
        ("parts.copy_ns", &|| drop(black_box(token.clone()))),
        ("parts.cached_access_token_ns", &|| {
            drop(black_box(session.cached_access_token()))
        }),
    ];
    report(
        "tokenkeeper",
        "parts.future_bytes",
        std::mem::size_of_val(&session.access_token()) as f64,
    );
    report(
        "tokenkeeper",
        "parts.result_bytes",
        std::mem::size_of::<Result<AccessToken, tokenkeeper::AuthError>>() as f64,
    );
    for (metric, call) in parts {
        let (mut samples, _) = measure(1, duration / 2, call);
        report("tokenkeeper", metric, quantile(&mut samples, 0.5));
    }
}
