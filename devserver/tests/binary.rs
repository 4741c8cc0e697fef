//! The `tokenkeeper-devserver` binary: prints its address, serves, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenkeeper-devserver"))
        .args(["--port", "0", "--jwt", "--access-token-lifetime", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("a line");
    let base = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let body: serde_json::Value = client
        .post(format!("{base}/oauth2/token"))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["access_token"].as_str().map(|t| t.split('.').count()), Some(3));

    #[cfg(unix)]
    {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("waiter")
            .expect("exit status");
        assert!(exit.success(), "{exit:?}");
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn help_exits_zero_and_names_the_clients_users_and_login_protocol() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenkeeper-devserver"))
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(output.status.success(), "{:?}", output.status);
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "demo-client",
        "public-app",
        "native-app",
        "alice / alice-password",
        "http://127.0.0.1/callback",
        "POST /oauth2/authorize",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn unknown_flag_exits_two() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenkeeper-devserver"))
        .arg("--nope")
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
}
