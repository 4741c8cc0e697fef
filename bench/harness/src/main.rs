//! The Rust side of `bench/run`: tokenkeeper and the seed-003 mutex cache, measured
//! against a development server that is already running. Prints one
//! `RESULT <implementation> <metric> <value>` line per figure; `bench/run` collects
//! them (with the Go peer's) into BENCHMARKS.md.
//!
//! ```text
//! tokenkeeper-bench --server URL hot [--millis MS]
//! tokenkeeper-bench --server URL economy [--sizes 10,100,1000,10000]
//! tokenkeeper-bench --server URL storm [--requests 1000]
//! tokenkeeper-bench --server URL memory --sessions N
//! ```

mod admin;
mod economy;
mod hot;
mod memory;
mod peer;
mod stats;
mod storm;

use admin::{BoxError, Server};
use std::time::Duration;

const USAGE: &str = "usage: tokenkeeper-bench --server URL (hot [--millis MS] | economy [--sizes N,N..] | \
                     storm [--requests N] | memory --sessions N)";

struct Args {
    server: String,
    command: String,
    millis: u64,
    sizes: Vec<usize>,
    requests: usize,
    sessions: usize,
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value.parse().map_err(|_| format!("invalid {flag} {value:?}"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        server: String::new(),
        command: String::new(),
        millis: 2000,
        sizes: vec![10, 100, 1_000, 10_000],
        requests: 1_000,
        sessions: 1_000,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => parsed.server = args.next().ok_or("--server needs a value")?,
            "--millis" => parsed.millis = number("--millis", args.next())?,
            "--requests" => parsed.requests = number("--requests", args.next())?,
            "--sessions" => parsed.sessions = number("--sessions", args.next())?,
            "--sizes" => {
                let list = args.next().ok_or("--sizes needs a value")?;
                parsed.sizes = list
                    .split(',')
                    .map(|n| number("--sizes", Some(n.to_owned())))
                    .collect::<Result<_, _>>()?;
            }
            "hot" | "economy" | "storm" | "memory" if parsed.command.is_empty() => parsed.command = arg,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if parsed.server.is_empty() || parsed.command.is_empty() {
        return Err("--server and a command are required".into());
    }
    Ok(parsed)
}

fn main() -> Result<(), BoxError> {
    let args = parse(std::env::args().skip(1)).map_err(|e| format!("{e}\n{USAGE}"))?;
    let server = Server::new(&args.server);
    // Memory is measured on one thread so allocator arenas of idle worker threads do
    // not blur the per-session figure.
    let runtime = if args.command == "memory" {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Runtime::new()?
    };
    match args.command.as_str() {
        "hot" => hot::run(&server, &runtime, Duration::from_millis(args.millis)),
        "economy" => runtime.block_on(economy::run(&server, &args.sizes))?,
        "storm" => runtime.block_on(storm::run(&server, args.requests))?,
        _ => runtime.block_on(memory::run(&server, args.sessions))?,
    }
    Ok(())
}
