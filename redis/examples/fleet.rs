//! The fleet demo: `cargo run -p tokenkeeper-redis --example fleet` (needs
//! `redis-server` on the PATH).
//!
//! Starts a throwaway `redis-server`, the development server with 50 tenants, and 8
//! portal processes (this program again, as `fleet-instance`), then prints for each
//! expiry how many token requests the whole fleet made per tenant and how many Redis
//! commands that took; then the same fleet without Redis (today's per-process cache).
//! `--bench` also prints `RESULT` lines for `bench/run`.

#[path = "../src/bin/fleet-instance.rs"]
#[allow(dead_code)]
mod instance;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use tokenkeeper_devserver::{tenant_client_id, DevServer, DevServerConfig};

const INSTANCES: usize = 8;
const TENANTS: usize = 50;
const EXPIRIES: u64 = 3;

struct Portal {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Portal {
    fn start(token_endpoint: &str, redis: Option<&str>, clock_start: u64) -> std::io::Result<Portal> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["--instance", "--token-endpoint", token_endpoint])
            .args([
                "--tenants",
                &TENANTS.to_string(),
                "--clock-start",
                &clock_start.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(url) = redis {
            command.args(["--redis", url]);
        }
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("no pipes to the instance"));
        };
        let mut portal = Portal {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        portal.read()?;
        Ok(portal)
    }

    fn send(&mut self, command: &str) -> std::io::Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()
    }

    fn read(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.send("quit");
        let _ = self.child.wait();
    }
}

fn all(portals: &mut [Portal], command: &str) -> std::io::Result<Vec<String>> {
    for portal in portals.iter_mut() {
        portal.send(command)?;
    }
    portals.iter_mut().map(Portal::read).collect()
}

fn per_tenant(server: &DevServer) -> Vec<u64> {
    let stats = server.stats();
    (0..TENANTS)
        .map(|t| {
            stats
                .tokens_issued_by_client
                .get(&tenant_client_id(t))
                .copied()
                .unwrap_or(0)
        })
        .collect()
}

fn redis_commands(redis: &redis_server::RedisServer) -> u64 {
    redis
        .cli(&["INFO", "stats"])
        .lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn demo(bench: bool) -> Result<(), Box<dyn std::error::Error>> {
    let Some(redis) = redis_server::RedisServer::start() else {
        return Ok(());
    };
    let server = DevServer::start(DevServerConfig::default().with_tenants(TENANTS)).await?;
    let clock_start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let endpoint = server.token_endpoint();
    println!(
        "{INSTANCES} portal processes x {TENANTS} tenants, one Redis ({})",
        redis.url()
    );
    let mut fleet = tokio::task::block_in_place(|| {
        (0..INSTANCES)
            .map(|_| Portal::start(&endpoint, Some(&redis.url()), clock_start))
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let mut before = (vec![0; TENANTS], redis_commands(&redis));
    for expiry in 1..=EXPIRIES {
        let answers = tokio::task::block_in_place(|| all(&mut fleet, "round"))?;
        let counts = per_tenant(&server);
        let requests: Vec<u64> = counts.iter().zip(&before.0).map(|(now, was)| now - was).collect();
        let commands = redis_commands(&redis) - before.1;
        let (min, max) = (
            requests.iter().min().copied().unwrap_or(0),
            requests.iter().max().copied().unwrap_or(0),
        );
        println!(
            "expiry {expiry}: token requests per tenant across the fleet: {min}..{max} (total {}); \
             Redis commands {commands} ({:.1} per tenant); instances: {}",
            requests.iter().sum::<u64>(),
            commands as f64 / TENANTS as f64,
            answers.join(", ")
        );
        if bench && expiry == EXPIRIES {
            let per_tenant = commands as f64 / TENANTS as f64;
            println!("RESULT tokenkeeper fleet.requests_per_tenant_per_expiry {max}");
            println!("RESULT tokenkeeper fleet.redis_commands_per_tenant_per_expiry {per_tenant:.1}");
            // On paper, from the measured count: commands scale with instances (each
            // instance asks once per identity per expiry), and every change message is
            // delivered to every instance. 1,000 instances × 100,000 tenants, 1 h tokens.
            let per_instance = per_tenant / INSTANCES as f64;
            let commands_per_expiry = 1000.0 * 100_000.0 * per_instance;
            println!(
                "RESULT tokenkeeper fleet.paper_commands_per_second {:.0}",
                commands_per_expiry / 3600.0
            );
            // Two messages per tenant per expiry (record or token changed, lease released).
            println!(
                "RESULT tokenkeeper fleet.paper_deliveries_per_second {:.0}",
                2.0 * 100_000.0 * 1000.0 / 3600.0
            );
        }
        before = (counts, redis_commands(&redis));
        tokio::task::block_in_place(|| all(&mut fleet, "advance 3601"))?;
    }
    let hot = tokio::task::block_in_place(|| {
        fleet[0].send("hot 1000000")?;
        fleet[0].read()
    })?;
    println!("cached access_token() with Redis configured: {hot} per call (it never touches Redis)");
    if let (true, Some(ns)) = (bench, hot.strip_prefix("ns ")) {
        println!("RESULT tokenkeeper fleet.cached_read_ns {ns}");
    }
    drop(fleet);

    let server = DevServer::start(DevServerConfig::default().with_tenants(TENANTS)).await?;
    let endpoint = server.token_endpoint();
    let mut alone = tokio::task::block_in_place(|| {
        (0..INSTANCES)
            .map(|_| Portal::start(&endpoint, None, clock_start))
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    tokio::task::block_in_place(|| all(&mut alone, "round"))?;
    let max = per_tenant(&server).into_iter().max().unwrap_or(0);
    println!("without Redis (each process its own cache): {max} token requests per tenant per expiry");
    if bench {
        println!("RESULT tokenkeeper fleet.requests_per_tenant_per_expiry_without_redis {max}");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--instance") {
        return instance::main();
    }
    let bench = std::env::args().any(|arg| arg == "--bench");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fleet: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(bench)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleet: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
