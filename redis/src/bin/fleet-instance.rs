//! `fleet-instance`: one instance of a server fleet, for the multi-process tests and
//! the fleet demo. Never part of an app.
//!
//! It plays seed 000's portal: one client-credentials client per tenant (the
//! development server's `tenant-I`), all sharing one Redis. It reads commands on
//! stdin and answers each with one line on stdout:
//!
//! | command | does | answers |
//! | --- | --- | --- |
//! | `round` | `access_token()` for every tenant, 3 concurrent callers each | `ok N err M` |
//! | `api` | `GET /api/me` through `Session::send` for every tenant (recovers on 401) | `ok N err M` |
//! | `hot N` | N cached `access_token()` calls on tenant 0 (after `round`) | `ns PER_CALL` |
//! | `redis-ready` | waits (at most 20 s) until a Redis `PING` succeeds | `ok` or `err …` |
//! | `advance SECS` | moves the instance's clock (a `ManualClock`: no test sleeps for expiry) | `ok` |
//! | `login USER PASSWORD`, `restore USER`, `refresh USER` | a user session | `ok` or `err REASON` |
//! | `quit` | exits | |
//!
//! ```text
//! fleet-instance --token-endpoint URL --tenants N --clock-start UNIX_SECS
//!                [--redis URL] [--lease-ttl-ms MS] [--lease-wait-ms MS]
//!                [--operation-timeout-ms MS]
//! ```
//! Without `--redis` it is today's per-process cache (the benchmark's baseline).

use futures_util::future::join_all;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokenkeeper::{AuthClient, AuthConfig, ManualClock, Session};
use tokenkeeper_redis::{RedisConfig, RedisFleet, Sealer, SealingKey};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Options {
    token_endpoint: String,
    tenants: usize,
    clock_start: u64,
    redis: Option<String>,
    lease_ttl: Duration,
    lease_wait: Duration,
    operation_timeout: Duration,
}

fn options() -> Result<Options, String> {
    // `--instance` first: the fleet example runs this file as its own children.
    let mut args = std::env::args().skip(1).skip_while(|arg| arg == "--instance");
    let mut options = Options {
        token_endpoint: String::new(),
        tenants: 1,
        clock_start: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        redis: None,
        lease_ttl: Duration::from_secs(10),
        lease_wait: Duration::from_secs(15),
        // Longer than the library's 500 ms: the tests count requests exactly, and on a
        // loaded 2-core CI machine a 500 ms timeout would (correctly) send one alone.
        operation_timeout: Duration::from_secs(2),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v:?}"));
        match flag.as_str() {
            "--token-endpoint" => options.token_endpoint = value()?,
            "--tenants" => options.tenants = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?,
            "--clock-start" => options.clock_start = number(value()?)?,
            "--redis" => options.redis = Some(value()?),
            "--lease-ttl-ms" => options.lease_ttl = Duration::from_millis(number(value()?)?),
            "--lease-wait-ms" => options.lease_wait = Duration::from_millis(number(value()?)?),
            "--operation-timeout-ms" => options.operation_timeout = Duration::from_millis(number(value()?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.token_endpoint.is_empty() {
        return Err("--token-endpoint is required".into());
    }
    Ok(options)
}

struct Instance {
    tenants: Vec<(AuthClient, Arc<Session>)>,
    users: AuthClient,
    clock: Arc<ManualClock>,
    api: String,
    fleet: Option<Arc<RedisFleet>>,
}

impl Instance {
    fn new(options: &Options) -> Result<Instance, Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(options.clock_start)));
        let fleet = match &options.redis {
            Some(url) => {
                // The demo's fixed key; an app reads its key from its secret manager.
                let key = SealingKey::new("demo", &[0x5a; 32])?;
                let config = RedisConfig::single(url.clone())
                    .key_prefix("fleet-demo")
                    .lease_ttl(options.lease_ttl)
                    .operation_timeout(options.operation_timeout)
                    .lease_wait(options.lease_wait);
                Some(RedisFleet::connect(config, Sealer::new(key, [])?)?)
            }
            None => None,
        };
        let build = |client_id: &str, secret: Option<String>| {
            let mut config = AuthConfig::new(options.token_endpoint.clone(), client_id)
                .clock(clock.clone())
                .store_timeout(options.lease_wait + Duration::from_secs(5));
            if let Some(secret) = secret {
                config = config.client_secret(SecretString::from(secret));
            }
            let mut builder = AuthClient::builder(config);
            if let Some(fleet) = &fleet {
                builder = builder
                    .record_store(fleet.clone())
                    .refresh_lock(fleet.clone())
                    .shared_tokens(fleet.clone());
            }
            let client = builder.build()?;
            if let Some(fleet) = &fleet {
                // logout(), invalidate() and a revocation seen elsewhere reach this instance.
                fleet.serve(&client);
            }
            Ok::<_, tokenkeeper::AuthError>(client)
        };
        let mut tenants = Vec::new();
        for index in 0..options.tenants {
            let client = build(&format!("tenant-{index}"), Some(format!("tenant-{index}-secret")))?;
            let session = client.client_credentials_session();
            tenants.push((client, session));
        }
        let users = build("public-app", None)?;
        let api = options.token_endpoint.replace("/oauth2/token", "/api/me");
        Ok(Instance {
            tenants,
            users,
            clock,
            api,
            fleet,
        })
    }

    async fn round(&self) -> String {
        let calls = self
            .tenants
            .iter()
            .flat_map(|(_, session)| (0..3).map(move |_| session.access_token()));
        tally(join_all(calls).await.iter().map(Result::is_ok))
    }

    async fn api(&self) -> String {
        let calls = self
            .tenants
            .iter()
            .map(|(client, session)| session.send(client.http().get(&self.api)));
        let results = join_all(calls).await;
        tally(
            results
                .iter()
                .map(|r| r.as_ref().is_ok_and(|resp| resp.status().is_success())),
        )
    }

    /// The cached read, Redis configured or not: it never touches Redis.
    async fn hot(&self, calls: u32) -> String {
        let Some((_, session)) = self.tenants.first() else {
            return "err no tenant".into();
        };
        let started = std::time::Instant::now();
        for _ in 0..calls {
            if session.access_token().await.is_err() {
                return "err the cached read failed".into();
            }
        }
        let nanos = started.elapsed().as_nanos() / u128::from(calls.max(1));
        format!("ns {nanos}")
    }

    async fn redis_ready(&self) -> String {
        let Some(fleet) = &self.fleet else {
            return "err no Redis configured".into();
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match fleet.ping().await {
                Ok(()) => return "ok".into(),
                Err(error) if tokio::time::Instant::now() >= deadline => return format!("err {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn user(&self, command: &str, words: &[&str]) -> String {
        let result = match (command, words) {
            ("login", [user, password]) => self.users.login(user, SecretString::from(*password)).await.map(drop),
            ("restore", [user]) => self.users.restore(user).await.map(drop),
            ("refresh", [user]) => match self.users.session(user) {
                Some(session) => session.refresh().await.map(drop),
                None => return "err no such session".into(),
            },
            _ => return "err bad command".into(),
        };
        match result {
            Ok(()) => "ok".into(),
            Err(error) => format!("err {error}"),
        }
    }
}

fn tally(outcomes: impl Iterator<Item = bool>) -> String {
    let (mut ok, mut err) = (0, 0);
    for outcome in outcomes {
        if outcome {
            ok += 1;
        } else {
            err += 1;
        }
    }
    format!("ok {ok} err {err}")
}

/// Runs the instance until `quit` or the end of stdin.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("fleet-instance: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let instance = match Instance::new(&options) {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("fleet-instance: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut stdout = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let _ = stdout.write_all(b"ready\n").await;
    let _ = stdout.flush().await;
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["round"] => instance.round().await,
            ["api"] => instance.api().await,
            ["redis-ready"] => instance.redis_ready().await,
            ["hot", calls] => match calls.parse() {
                Ok(calls) => instance.hot(calls).await,
                Err(_) => "err not a number".into(),
            },
            ["advance", secs] => match secs.parse() {
                Ok(secs) => {
                    instance.clock.advance(Duration::from_secs(secs));
                    "ok".into()
                }
                Err(_) => "err not a number".into(),
            },
            [command @ ("login" | "restore" | "refresh"), rest @ ..] => instance.user(command, rest).await,
            ["quit"] => break,
            _ => "err unknown command".into(),
        };
        let _ = stdout.write_all(format!("{answer}\n").as_bytes()).await;
        let _ = stdout.flush().await;
    }
    std::process::ExitCode::SUCCESS
}
