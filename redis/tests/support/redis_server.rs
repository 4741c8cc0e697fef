//! A real `redis-server` for the tests: started on a free loopback port in a
//! throwaway directory, and killable (`SIGKILL`), restartable on the same port and
//! pausable (`SIGSTOP`: a Redis that accepts connections and never answers).
//!
//! Needs `redis-server` on the PATH (`.ci/run` installs Debian's). Without it,
//! [`RedisServer::start`] returns `None` and the test says it skipped, so a developer
//! without Redis can still run the rest; CI has it, and `TOKENKEEPER_REQUIRE_REDIS=1`
//! (set by `.ci/run`) turns the skip into a failure there.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, or paused) `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A config file's text (written to `redis.conf`, the first argument) and more
    /// arguments: a replica, a sentinel, a cluster node.
    config: Option<String>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server, or `None` when `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(None, &[])
    }

    /// [`start`](Self::start) with a config file's text and more arguments (`{port}`
    /// in either is replaced by the server's port, `{bus_port}` by another free port).
    pub fn start_with(config: Option<&str>, extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("TOKENKEEPER_REQUIRE_REDIS").is_none(),
                "redis-server is not installed but TOKENKEEPER_REQUIRE_REDIS is set"
            );
            eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tokenkeeper-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A cluster node's bus listens on port + 10000 unless told otherwise, which
        // fails for an ephemeral port above 55535: `{bus_port}` is a free port of its own.
        let bus_port = free_port();
        let fill = |text: &str| {
            text.replace("{port}", &port.to_string())
                .replace("{bus_port}", &bus_port.to_string())
        };
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            config: config.map(fill),
            extra: extra.iter().map(|arg| fill(arg)).collect(),
        };
        server.spawn();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port, stable across [`RedisServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `SIGKILL`: connections drop, all data is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `SIGSTOP`: the socket stays open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `SIGCONT` after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Runs `redis-cli` against this server and returns its output (for assertions
    /// on what Redis holds).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
            assert!(status.is_ok_and(|s| s.success()), "kill {signal}");
        }
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            let file = self.dir.join("redis.conf");
            std::fs::write(&file, config).expect("write redis.conf");
            command.arg(file);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while self.cli(&["PING"]) != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits, bounded (5 s), for `done`: another instance hears the fleet channel.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}
