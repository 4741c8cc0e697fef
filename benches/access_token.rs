//! The cached `access_token()` path, on 1 and 2 threads, next to a peer: the
//! double-checked-lock cache of seed 003 (a mutex around token + expiry), written
//! the way most apps hand-roll it.
//!
//! With DPoP (RFC 9449): the same cached call with DPoP on beside Bearer, one ES256
//! signature by the software key, and one request's headers (`Authorization: DPoP` and
//! a fresh proof) as an app with its own HTTP stack gets them.
//!
//! Run: `cargo bench --bench access_token`. Each "iteration" of the 2-thread cases is
//! one call on each of two threads, so throughput(2)/throughput(1) = 2 × t1 / t2.

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use secrecy::SecretString;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokenkeeper::{AuthClient, AuthConfig, DpopKey, DpopMode, Session, SoftwareDpopKey};
use tokenkeeper_devserver::{DevServer, DevServerConfig};

/// Seed 003's TokenCache: check, lock, double-check, return a copy of the string.
struct MutexCache {
    token: Mutex<Option<(String, SystemTime)>>,
}

impl MutexCache {
    fn get(&self) -> String {
        let guard = self.token.lock().unwrap();
        match &*guard {
            Some((token, expiry)) if SystemTime::now() + Duration::from_secs(300) < *expiry => token.clone(),
            _ => unreachable!("the benchmark keeps the token valid"),
        }
    }
}

fn warm_session(runtime: &tokio::runtime::Runtime) -> (DevServer, Arc<Session>) {
    warm_session_with(runtime, DpopMode::Off)
}

fn warm_session_with(runtime: &tokio::runtime::Runtime, dpop: DpopMode) -> (DevServer, Arc<Session>) {
    runtime.block_on(async {
        let server = DevServer::start(DevServerConfig::default()).await.unwrap();
        let config = AuthConfig::new(server.token_endpoint(), "demo-client")
            .client_secret(SecretString::from("demo-secret"))
            .dpop(dpop);
        let session = AuthClient::new(config).unwrap().client_credentials_session();
        session.access_token().await.unwrap();
        (server, session)
    })
}

fn cached_call(session: &Session) {
    // The cached path completes on its first poll: no executor or runtime needed.
    let token = session
        .access_token()
        .now_or_never()
        .expect("cached path is synchronous")
        .unwrap();
    black_box(token);
}

fn on_two_threads(iters: u64, work: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            barrier.wait();
            for _ in 0..iters {
                work();
            }
        });
        barrier.wait();
        let started = Instant::now();
        for _ in 0..iters {
            work();
        }
        worker.join().unwrap();
        started.elapsed()
    })
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_server, session) = warm_session(&runtime);
    let peer = MutexCache {
        token: Mutex::new(Some(("x".repeat(43), SystemTime::now() + Duration::from_secs(3600)))),
    };

    let mut group = c.benchmark_group("cached_access_token");
    group.bench_function("tokenkeeper/1_thread", |b| b.iter(|| cached_call(&session)));
    group.bench_function("tokenkeeper/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || cached_call(&session)))
    });
    group.bench_function("mutex_cache_peer/1_thread", |b| b.iter(|| black_box(peer.get())));
    group.bench_function("mutex_cache_peer/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || drop(black_box(peer.get()))))
    });
    group.finish();

    let (_dpop_server, dpop_session) = warm_session_with(&runtime, DpopMode::Required);
    let key = SoftwareDpopKey::generate().unwrap();
    // A typical proof's signing input: header with the jwk, claims with ath and a nonce.
    let signing_input = [b'x'; 420];
    let mut group = c.benchmark_group("dpop");
    group.bench_function("cached_access_token/bearer", |b| b.iter(|| cached_call(&session)));
    group.bench_function("cached_access_token/dpop", |b| b.iter(|| cached_call(&dpop_session)));
    group.bench_function("es256_sign/software_key", |b| {
        b.iter(|| black_box(key.sign(black_box(&signing_input)).unwrap()))
    });
    group.bench_function("authorization_headers/dpop", |b| {
        b.iter(|| {
            let headers = dpop_session
                .authorization_headers("GET", "https://api.example.com/orders?page=2")
                .now_or_never()
                .expect("a cached token and a proof need no I/O")
                .unwrap();
            black_box(headers)
        })
    });
    group.finish();
}

criterion_group!(name = cached; config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)); targets = benches);
criterion_main!(cached);
