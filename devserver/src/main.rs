//! The `tokenkeeper-devserver` binary: starts a [`DevServer`] with the default
//! configuration plus command-line flags, prints
//! `listening on http://127.0.0.1:PORT` and serves until Ctrl-C or SIGTERM.
//!
//! ```text
//! tokenkeeper-devserver [--port N] [--access-token-lifetime SECS]
//!                       [--rotate-refresh-tokens] [--rotate-access-tokens]
//!                       [--jwt] [--reuse-active-token] [--tenants N]
//!                       [--dpop-required] [--dpop-nonces]
//! ```
//!
//! `--tenants N` registers the clients `tenant-0` … `tenant-(N-1)` (secret
//! `tenant-I-secret`, client-credentials grant) for the fleet tests and demo.
//!
//! `--rotate-access-tokens` turns on per-response access-token rotation at `/api/…`
//! with the default [`RotationSpec`] (`access-token` and `expiry` headers).
//!
//! `--help` prints the flags and what the server knows: its clients, users and
//! redirect URIs (read from [`DevServerConfig::default()`], so the text cannot
//! drift from the server) and the browser-less login protocol.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tokenkeeper_devserver::{DevServer, DevServerConfig, RotationSpec};

const USAGE: &str = "usage: tokenkeeper-devserver [--port N] [--access-token-lifetime SECS] \
                     [--rotate-refresh-tokens] [--rotate-access-tokens] [--jwt] [--reuse-active-token] \
                     [--tenants N] [--dpop-required] [--dpop-nonces]";

/// The flags and the login protocol; the clients and users are filled in from
/// the configuration by [`help`].
const FLAGS_AND_PROTOCOL: &str = "\
A development OAuth 2.0 authorization server on 127.0.0.1, for tests and demos.
Never expose it: every password below is public.

Flags:
  --port N                     listen on port N (default 0: any free port; the
                               first line printed is `listening on http://127.0.0.1:PORT`)
  --access-token-lifetime SECS lifetime of issued access tokens (default 3600)
  --rotate-refresh-tokens      each refresh returns a new refresh token and
                               invalidates the one presented
  --rotate-access-tokens       /api/... answers with a fresh access token in the
                               `access-token` header and its expiry in `expiry`
  --jwt                        issue JWT-shaped (unsigned, not verifiable) access tokens
  --reuse-active-token         like WSO2: a repeated token request returns the
                               still-active access token
  --dpop-required              demo-client's token requests must carry a DPoP proof
                               (RFC 9449); its tokens are bound to the proof's key
  --dpop-nonces                every DPoP proof must carry the server's nonce
  -h, --help                   print this text

Endpoints (relative to the printed base URL):
  POST /oauth2/token                 token endpoint (RFC 6749)
  POST /oauth2/revoke                revocation (RFC 7009)
  GET  /oauth2/authorize             authorization endpoint: a login form (PKCE S256 required)
  POST /oauth2/device_authorization  device authorization (RFC 8628)
  GET  /device                       device verification page
  GET  /.well-known/oauth-authorization-server   metadata (RFC 8414)
  ANY  /api/<path>                   bearer-protected resource (/api/admin... needs scope admin)
  /_admin/...                        test controls: stats, revoke-subject, revoke-token,
                                     set-password, fault, clear-faults

Signing in without a browser (the login form's protocol):
  POST /oauth2/authorize, form-encoded, with the authorization request's own
  parameters (response_type=code, client_id, redirect_uri, state,
  code_challenge, code_challenge_method=S256, scope) plus username and password.
  The answer is 303 See Other to redirect_uri with code, state and iss, or with
  error=access_denied for a wrong password. Then exchange the code at
  /oauth2/token (grant_type=authorization_code, code, redirect_uri,
  code_verifier, client_id).
  Device codes: POST /device with user_code, username and password approves
  (action=deny denies it).
";

/// The `--help` text: flags, the registered clients and users of the default
/// configuration, and the login protocol.
fn help() -> String {
    let config = DevServerConfig::default();
    let mut text = format!("{USAGE}\n\n{FLAGS_AND_PROTOCOL}\nClients:\n");
    for client in &config.clients {
        let kind = match &client.client_secret {
            Some(secret) => format!("confidential, secret {secret}"),
            None => "public, no secret".to_owned(),
        };
        text.push_str(&format!(
            "  {} ({kind})\n    scopes: {}\n    grants: {}\n",
            client.client_id,
            client.scopes.join(" "),
            client.grants.join(" ")
        ));
        if !client.redirect_uris.is_empty() {
            text.push_str(&format!(
                "    redirect URIs: {} (a loopback URI matches any port, RFC 8252 §7.3)\n",
                client.redirect_uris.join(" ")
            ));
        }
    }
    text.push_str("\nUsers (username / password):\n");
    for user in &config.users {
        text.push_str(&format!("  {} / {}\n", user.username, user.password));
    }
    text
}

/// What the command line asks for.
enum Command {
    Serve(Box<Options>),
    Help,
}

/// Parsed command line.
struct Options {
    port: u16,
    config: DevServerConfig,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
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
            "--dpop-required" => options.config.dpop.required_for_clients = vec!["demo-client".into()],
            "--dpop-nonces" => options.config.dpop.nonces = true,
            "--tenants" => {
                let v = value("--tenants")?;
                let count: usize = v.parse().map_err(|_| format!("invalid tenant count {v:?}"))?;
                options.config = options.config.with_tenants(count);
            }
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Serve(Box::new(options)))
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
        Ok(Command::Serve(options)) => *options,
        Ok(Command::Help) => {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(help().as_bytes());
            let _ = stdout.flush();
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tokenkeeper-devserver: {message}");
            eprintln!("{USAGE} (--help for clients, users and the login protocol)");
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

    fn serve(list: &[&str]) -> Options {
        match parse_args(args(list)) {
            Ok(Command::Serve(options)) => *options,
            Ok(Command::Help) => panic!("{list:?} asked for help"),
            Err(e) => panic!("{list:?}: {e}"),
        }
    }

    #[test]
    fn parses_flags() {
        let o = serve(&[
            "--port",
            "8080",
            "--access-token-lifetime=60",
            "--jwt",
            "--reuse-active-token",
            "--rotate-refresh-tokens",
            "--rotate-access-tokens",
            "--tenants=3",
            "--dpop-required",
            "--dpop-nonces",
        ]);
        assert_eq!(o.port, 8080);
        assert_eq!(o.config.access_token_lifetime, Duration::from_secs(60));
        assert!(o.config.jwt_access_tokens);
        assert!(o.config.reuse_active_token);
        assert!(o.config.rotate_refresh_tokens);
        assert_eq!(o.config.rotation, Some(RotationSpec::default()));
        assert_eq!(serve(&[]).config.rotation, None);
        assert!(o.config.clients.iter().any(|c| c.client_id == "tenant-2"));
        assert!(!o.config.clients.iter().any(|c| c.client_id == "tenant-3"));
        assert_eq!(o.config.dpop.required_for_clients, ["demo-client"]);
        assert!(o.config.dpop.nonces);
        assert!(!serve(&[]).config.dpop.nonces);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_args(args(&["--port"])).is_err());
        assert!(parse_args(args(&["--port", "x"])).is_err());
        assert!(parse_args(args(&["--nope"])).is_err());
    }

    #[test]
    fn help_lists_every_client_user_and_redirect_uri() {
        assert!(matches!(parse_args(args(&["--help"])), Ok(Command::Help)));
        assert!(matches!(parse_args(args(&["--port", "1", "-h"])), Ok(Command::Help)));
        let text = help();
        let config = DevServerConfig::default();
        for client in &config.clients {
            assert!(text.contains(&client.client_id), "{}", client.client_id);
            for uri in &client.redirect_uris {
                assert!(text.contains(uri.as_str()), "{uri}");
            }
        }
        assert!(text.contains("secret demo-secret"));
        for user in &config.users {
            assert!(text.contains(&format!("{} / {}", user.username, user.password)));
        }
        assert!(text.contains("POST /oauth2/authorize"));
        assert!(text.contains("code_verifier"));
    }
}
