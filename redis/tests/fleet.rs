//! A server fleet, for real: several OS processes (`fleet-instance`), one real
//! `redis-server`, the development server counting every token request.
//!
//! Each instance runs on a `ManualClock` the test advances, so expiry needs no sleep;
//! the only real waits are the ones the scenario is about (a lease's TTL after its
//! holder was killed), bounded.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenkeeper_devserver::{tenant_client_id, DevServer, DevServerConfig, Endpoint, Fault};

/// One `fleet-instance` process.
struct Instance {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Instance {
    fn start(server: &DevServer, redis: Option<&RedisServer>, tenants: usize, extra: &[&str]) -> Instance {
        let clock_start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut command = Command::new(env!("CARGO_BIN_EXE_fleet-instance"));
        command
            .args(["--token-endpoint", &server.token_endpoint()])
            .args(["--tenants", &tenants.to_string()])
            // Every instance's clock starts at the same second, as a fleet's NTP'd clocks.
            .args(["--clock-start", &(clock_start / 10 * 10).to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(redis) = redis {
            command.args(["--redis", &redis.url()]);
        }
        let mut child = command.spawn().expect("spawn fleet-instance");
        let stdin = child.stdin.take().expect("stdin");
        let mut instance = Instance {
            stdout: BufReader::new(child.stdout.take().expect("stdout")),
            stdin,
            child,
        };
        assert_eq!(instance.read(), "ready");
        instance
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write command");
        self.stdin.flush().expect("flush");
    }

    fn read(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read answer");
        line.trim().to_owned()
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.read()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `command` to every instance at once and collects the answers.
fn ask_all(instances: &mut [Instance], command: &str) -> Vec<String> {
    tokio::task::block_in_place(|| {
        for instance in instances.iter_mut() {
            instance.send(command);
        }
        instances.iter_mut().map(Instance::read).collect()
    })
}

fn start_fleet(
    server: &DevServer,
    redis: Option<&RedisServer>,
    count: usize,
    tenants: usize,
    extra: &[&str],
) -> Vec<Instance> {
    tokio::task::block_in_place(|| {
        (0..count)
            .map(|_| Instance::start(server, redis, tenants, extra))
            .collect()
    })
}

fn issued(server: &DevServer, tenant: usize) -> u64 {
    server
        .stats()
        .tokens_issued_by_client
        .get(&tenant_client_id(tenant))
        .copied()
        .unwrap_or(0)
}

async fn devserver(config: DevServerConfig) -> DevServer {
    DevServer::start(config).await.expect("development server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_processes_fifty_tenants_one_token_request_per_tenant_per_expiry() {
    let Some(redis) = RedisServer::start() else { return };
    let server = devserver(DevServerConfig::default().with_tenants(50)).await;
    let mut fleet = start_fleet(&server, Some(&redis), 8, 50, &[]);
    for expiry in 1..=3u64 {
        // 8 processes × 50 tenants × 3 concurrent callers each.
        for answer in ask_all(&mut fleet, "round") {
            assert_eq!(answer, "ok 150 err 0");
        }
        for tenant in 0..50 {
            assert_eq!(issued(&server, tenant), expiry, "tenant {tenant} after expiry {expiry}");
        }
        assert_eq!(server.stats().token_requests, 50 * expiry);
        // Every instance's clock passes the tokens' expiry (3600 s).
        for answer in ask_all(&mut fleet, "advance 3601") {
            assert_eq!(answer, "ok");
        }
    }
    // Without Redis, the same fleet is today's per-process cache: 8 requests per tenant.
    let server = devserver(DevServerConfig::default().with_tenants(50)).await;
    let mut alone = start_fleet(&server, None, 8, 50, &[]);
    for answer in ask_all(&mut alone, "round") {
        assert_eq!(answer, "ok 150 err 0");
    }
    assert_eq!(server.stats().token_requests, 8 * 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_of_everything_costs_one_recovery_request_per_tenant_for_the_fleet() {
    let Some(redis) = RedisServer::start() else { return };
    let server = devserver(DevServerConfig::default().with_tenants(50)).await;
    let mut fleet = start_fleet(&server, Some(&redis), 8, 50, &[]);
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 150 err 0");
    }
    server.reset_stats();
    server.revoke_all();
    // Every instance calls the API for every tenant: 401, recovery, replay.
    for answer in ask_all(&mut fleet, "api") {
        assert_eq!(answer, "ok 50 err 0");
    }
    for tenant in 0..50 {
        assert_eq!(issued(&server, tenant), 1, "tenant {tenant}");
    }
    assert_eq!(server.stats().token_requests, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_endpoint_slower_than_the_lease_is_covered_by_the_watchdog_one_request() {
    let Some(redis) = RedisServer::start() else { return };
    let server = devserver(DevServerConfig::default().with_tenants(1)).await;
    let mut fleet = start_fleet(&server, Some(&redis), 3, 1, &["--lease-ttl-ms", "600"]);
    // The token endpoint answers after 2.5 s: four lease TTLs.
    server.inject(Endpoint::Token, Fault::Delay(Duration::from_millis(2500)));
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 3 err 0");
    }
    assert_eq!(server.stats().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lease_holder_killed_mid_request_is_taken_over_after_the_lease_and_no_refresh_token_is_spent_twice() {
    let Some(redis) = RedisServer::start() else { return };
    let server = devserver(DevServerConfig {
        rotate_refresh_tokens: true,
        ..DevServerConfig::default()
    })
    .await;
    let lease = ["--lease-ttl-ms", "1500"];
    let mut a = tokio::task::block_in_place(|| Instance::start(&server, Some(&redis), 0, &lease));
    let mut b = tokio::task::block_in_place(|| Instance::start(&server, Some(&redis), 0, &lease));
    tokio::task::block_in_place(|| {
        assert_eq!(a.ask("login alice alice-password"), "ok");
        // B resumes from the fleet's record and rotates the refresh token once.
        assert_eq!(b.ask("restore alice"), "ok");
        assert_eq!(a.ask("refresh alice"), "ok");
    });
    let before = server.stats().token_requests;
    // A's next refresh hangs at the server; A dies holding the lease.
    server.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(30)));
    tokio::task::block_in_place(|| a.send("refresh alice"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().token_requests == before {
        assert!(Instant::now() < deadline, "A's refresh reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    let killed = Instant::now();
    let answer = tokio::task::block_in_place(|| b.ask("refresh alice"));
    assert_eq!(answer, "ok");
    assert!(
        killed.elapsed() >= Duration::from_millis(1000),
        "B waited for the lease: {:?}",
        killed.elapsed()
    );
    tokio::task::block_in_place(|| assert_eq!(b.ask("refresh alice"), "ok"));
    assert_eq!(
        server.stats().refresh_token_reuse,
        0,
        "no refresh token was spent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_killed_and_restarted_mid_run_calls_keep_succeeding_and_sharing_resumes() {
    let Some(mut redis) = RedisServer::start() else { return };
    let server = devserver(DevServerConfig::default().with_tenants(20)).await;
    let mut fleet = start_fleet(&server, Some(&redis), 4, 20, &[]);
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 60 err 0");
    }
    assert_eq!(server.stats().token_requests, 20);

    // A stopped Redis (SIGSTOP): every call still succeeds, each instance on its own.
    redis.pause();
    ask_all(&mut fleet, "advance 3601");
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 60 err 0");
    }
    redis.resume();

    // Killed: the same.
    redis.kill();
    ask_all(&mut fleet, "advance 3601");
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 60 err 0");
    }
    let alone = server.stats().token_requests;
    assert!(
        alone <= 20 + 2 * 4 * 20,
        "at most one request per tenant per instance while alone"
    );

    // Back (empty): once the instances reconnect, one request per tenant again.
    redis.restart();
    for answer in ask_all(&mut fleet, "redis-ready") {
        assert_eq!(answer, "ok");
    }
    ask_all(&mut fleet, "advance 3601");
    for answer in ask_all(&mut fleet, "round") {
        assert_eq!(answer, "ok 60 err 0");
    }
    assert_eq!(server.stats().token_requests - alone, 20, "sharing resumed");
}
