//! Measurement 1: the cached `access_token()` on 1 and 2 threads, next to the mutex
//! cache, plus where tokenkeeper's time goes (clock read, copy, atomic load).
//!
//! Timing one ~50 ns call with `Instant::now()` would measure the timer, so calls run
//! in batches of `BATCH`: each sample is one batch's time divided by `BATCH`. The p99
//! is therefore the p99 of 256-call means (it catches preemption and contention, not a
//! single slow call).
//!
//! Both caches are called the way an `async fn` calls them: `.await` on the async API,
//! the whole batch inside one poll of one task, so no call pays for an executor or a
//! waker that a real caller would not. The per-call `now_or_never()` of earlier runs is
//! kept as a part (`parts.now_or_never_ns`).

use crate::admin::Server;
use crate::peer::MutexCache;
use crate::stats::{quantile, report};
use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use std::future::Future;
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

/// `BATCH` calls of a synchronous `call`.
fn sync_batch(call: impl Fn() + Sync) -> impl Fn() + Sync {
    move || {
        for _ in 0..BATCH {
            call();
        }
    }
}

/// `BATCH` awaits of the future `call` makes, inside one poll of one async block: what
/// an `async fn` pays for `.await` on a cache that is ready.
fn awaited_batch<F: Future<Output = ()>>(call: impl Fn() -> F + Sync) -> impl Fn() + Sync {
    move || {
        let batch = async {
            for _ in 0..BATCH {
                call().await;
            }
        };
        if batch.now_or_never().is_none() {
            panic!("a cached read must never wait during the benchmark");
        }
    }
}

/// Times `batch` (which makes `BATCH` calls) again and again for `duration`.
fn run_for(duration: Duration, batch: &(impl Fn() + Sync)) -> Run {
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        let t0 = Instant::now();
        batch();
        samples.push(t0.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    let calls = samples.len() as u64 * u64::from(BATCH);
    Run {
        samples,
        calls,
        elapsed: started.elapsed(),
    }
}

/// Runs `batch` on `threads` threads at once; returns all samples and calls per second.
fn measure(threads: usize, duration: Duration, batch: impl Fn() + Sync) -> (Vec<f64>, f64) {
    // Warm caches and the branch predictor first.
    run_for(duration / 10, &batch);
    let barrier = Barrier::new(threads);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    run_for(duration, &batch)
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

fn report_case(implementation: &str, duration: Duration, batch: impl Fn() + Sync) {
    let mut throughput = [0.0; 2];
    for threads in [1, 2] {
        let (mut samples, per_sec) = measure(threads, duration, &batch);
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

fn fresh(token: Result<AccessToken, tokenkeeper::AuthError>) -> AccessToken {
    match token {
        Ok(token) => token,
        Err(_) => panic!("the token must be cached and fresh during the benchmark"),
    }
}

/// One `now_or_never()` per call: each call builds a waker and a context of its own.
fn polled_once(session: &Session) -> AccessToken {
    match session.access_token().now_or_never() {
        Some(token) => fresh(token),
        None => panic!("a cached read must never wait during the benchmark"),
    }
}

pub fn run(server: &Server, runtime: &tokio::runtime::Runtime, duration: Duration) {
    let config =
        AuthConfig::new(server.token_endpoint(), "demo-client").client_secret(SecretString::from("demo-secret"));
    let client = AuthClient::new(config).expect("valid config");
    let session = client.client_credentials_session();
    let token = runtime.block_on(session.access_token()).expect("first token");
    report_case(
        "tokenkeeper",
        duration,
        awaited_batch(|| async { drop(black_box(fresh(session.access_token().await))) }),
    );

    let peer = MutexCache::new(server.clone());
    runtime.block_on(peer.get()).expect("peer token");
    report_case(
        "mutex",
        duration,
        awaited_batch(|| async {
            match peer.get().await {
                Ok(token) => drop(black_box(token)),
                Err(_) => panic!("the peer's token must be cached during the benchmark"),
            }
        }),
    );

    // Where tokenkeeper's time goes: each part of the cached path alone, one thread.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let swap = ArcSwapOption::new(Some(Arc::new(token.clone())));
    let parts: [(&str, &(dyn Fn() + Sync)); 6] = [
        ("parts.now_or_never_ns", &|| drop(black_box(polled_once(&session)))),
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
        let (mut samples, _) = measure(1, duration / 2, sync_batch(call));
        report("tokenkeeper", metric, quantile(&mut samples, 0.5));
    }
}
