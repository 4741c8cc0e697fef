//! The `tokenkeeper-devserver` binary: starts a [`DevServer`] with the default
//! configuration plus command-line flags, prints
//! `listening on http://127.0.0.1:PORT` and serves until Ctrl-C or SIGTERM.
//!
//! ```text
//! tokenkeeper-devserver [--port N] [--access-token-lifetime SECS]
//!                       [--rotate-refresh-tokens] [--rotate-access-tokens]
//!                       [--jwt] [--reuse-active-token] [--tenants N]
//! ```
//!
//! `--tenants N` registers the clients `tenant-0` … `tenant-(N-1)` (secret
//! `tenant-I-secret`, client-credentials grant) for the fleet tests and demo.
//!
//! `--rotate-access-tokens` turns on per-response access-token rotation at `/api/…`
//! with the default [`RotationSpec`] (`access-token` and `expiry` headers).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tokenkeeper_devserver::{DevServer, DevServerConfig, RotationSpec};

const USAGE: &str = "usage: tokenkeeper-devserver [--port N] [--access-token-lifetime SECS] \
                     [--rotate-refresh-tokens] [--rotate-access-tokens] [--jwt] [--reuse-active-token] \
                     [--tenants N]";

/// Parsed command line.
struct Options {
    port: u16,
    config: DevServerConfig,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        config: DevServerConfig::default(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value("--port")?;
                options.port = v.parse().map_err(|_| format!("invalid port {v:?}"))?;
            }
            "--access-token-lifetime" => {
                let v = value("--access-token-lifetime")?;
                let secs: u64 = v.parse().map_err(|_| format!("invalid lifetime {v:?}"))?;
                options.config.access_token_lifetime = Duration::from_secs(secs);
            }
            "--rotate-refresh-tokens" => options.config.rotate_refresh_tokens = true,
            "--rotate-access-tokens" => options.config.rotation = Some(RotationSpec::default()),
            "--jwt" => options.config.jwt_access_tokens = true,
            "--reuse-active-token" => options.config.reuse_active_token = true,
            "--tenants" => {
                let v = value("--tenants")?;
                let count: usize = v.parse().map_err(|_| format!("invalid tenant count {v:?}"))?;
                options.config = options.config.with_tenants(count);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = sigterm.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("tokenkeeper-devserver: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match DevServer::start_on(options.config, options.port).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("tokenkeeper-devserver: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", server.base_url());
    let _ = stdout.flush();
    terminated().await;
    server.shutdown();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_flags() {
        let o = parse_args(args(&[
            "--port",
            "8080",
            "--access-token-lifetime=60",
            "--jwt",
            "--reuse-active-token",
            "--rotate-refresh-tokens",
            "--rotate-access-tokens",
            "--tenants=3",
        ]))
        .expect("valid");
        assert_eq!(o.port, 8080);
        assert_eq!(o.config.access_token_lifetime, Duration::from_secs(60));
        assert!(o.config.jwt_access_tokens);
        assert!(o.config.reuse_active_token);
        assert!(o.config.rotate_refresh_tokens);
        assert_eq!(o.config.rotation, Some(RotationSpec::default()));
        assert_eq!(parse_args(args(&[])).expect("valid").config.rotation, None);
        assert!(o.config.clients.iter().any(|c| c.client_id == "tenant-2"));
        assert!(!o.config.clients.iter().any(|c| c.client_id == "tenant-3"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_args(args(&["--port"])).is_err());
        assert!(parse_args(args(&["--port", "x"])).is_err());
        assert!(parse_args(args(&["--nope"])).is_err());
    }
}
