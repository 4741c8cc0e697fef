//! The loopback redirect listener for desktop apps (RFC 8252 §7.3): an HTTP
//! listener on `127.0.0.1` with a port chosen by the OS, which takes the one
//! redirect the browser brings back, answers it with a small page, and closes.

use super::PendingAuthorization;
use crate::error::AuthError;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest request head read from a connection (a redirect URL plus headers).
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// A connection that sends nothing for this long is dropped (browsers pre-connect).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const CALLBACK_PATH: &str = "/callback";

const NOT_THIS_SIGN_IN: &str = "<!doctype html><meta charset=\"utf-8\"><title>Not this sign-in</title>\
<p>This link does not belong to the sign-in in progress.</p>";

const PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Signed in</title>\
<p>The sign-in is complete. You can close this window and return to the app.</p>";

/// A one-shot redirect listener on `http://127.0.0.1:<port>/callback`.
///
/// Use [`redirect_uri`](Self::redirect_uri) in the
/// [`AuthorizationRequest`](super::AuthorizationRequest), open the URL, then
/// [`wait`](Self::wait). The listener binds the IPv4 loopback literal, not
/// `localhost`, as RFC 8252 §8.3 recommends.
#[derive(Debug)]
pub struct LoopbackRedirect {
    listener: TcpListener,
    redirect_uri: String,
}

impl LoopbackRedirect {
    /// Binds `127.0.0.1` on an ephemeral port.
    pub async fn bind() -> Result<Self, AuthError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| AuthError::config(format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::config(format!("cannot read the listener's port: {e}")))?
            .port();
        Ok(Self {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
        })
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the browser's `GET /callback?...` **for `pending`** (its `state`
    /// matches), answers it with a page telling the user to return to the app, closes
    /// the listener and returns the full redirect URL for
    /// [`AuthClient::complete_authorization`](crate::AuthClient::complete_authorization).
    ///
    /// A callback with another `state` (or none) is answered 400 and the wait goes on:
    /// any local process, or a web page that finds the port, can send one, and it
    /// must not break the user's sign-in. Other requests (a favicon, a pre-connect
    /// that sends nothing) are answered 404 or dropped. After `timeout` without the
    /// right redirect: [`AuthError::Cancelled`].
    pub async fn wait_for(self, pending: &PendingAuthorization, timeout: Duration) -> Result<String, AuthError> {
        let expected = pending.state().to_owned();
        tokio::time::timeout(timeout, self.wait_matching(Some(expected)))
            .await
            .unwrap_or(Err(AuthError::Cancelled))
    }

    /// Waits for the first `GET /callback?...`, whatever it carries.
    ///
    /// A forged callback (any local process can send one) ends this wait and breaks
    /// the sign-in; [`wait_for`](Self::wait_for) keeps waiting for the real one.
    #[deprecated(note = "use wait_for(&pending, timeout), which ignores callbacks for another sign-in")]
    pub async fn wait(self) -> Result<String, AuthError> {
        self.wait_matching(None).await
    }

    async fn wait_matching(self, expected: Option<String>) -> Result<String, AuthError> {
        let (found, mut redirects) = mpsc::channel::<String>(1);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, peer)) = accepted else {
                        // Transient (aborted connection, descriptor limit): do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let found = found.clone();
                    let base = self.redirect_uri.clone();
                    let expected = expected.clone();
                    // Each connection on its own task: a silent pre-connect must not block the real one.
                    tokio::spawn(async move {
                        if let Some(url) = serve(stream, peer, &base, expected.as_deref()).await {
                            let _ = found.send(url).await;
                        }
                    });
                }
                Some(url) = redirects.recv() => return Ok(url),
            }
        }
    }
}

/// Answers one connection; the redirect URL if it was the callback.
async fn serve(mut stream: TcpStream, peer: SocketAddr, redirect_uri: &str, expected: Option<&str>) -> Option<String> {
    if !peer.ip().is_loopback() {
        return None;
    }
    let target = tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream))
        .await
        .ok()
        .flatten();
    let (status, body, url) = match target {
        Some((method, target))
            if method == "GET"
                && path_of(&target) == CALLBACK_PATH
                && expected.is_some_and(|expected| state_of(&target).as_deref() != Some(expected)) =>
        {
            ("400 Bad Request", NOT_THIS_SIGN_IN, None)
        }
        Some((method, target)) if method == "GET" && path_of(&target) == CALLBACK_PATH => {
            let origin = redirect_uri.strip_suffix(CALLBACK_PATH).unwrap_or(redirect_uri);
            ("200 OK", PAGE, Some(format!("{origin}{target}")))
        }
        Some(_) => ("404 Not Found", "", None),
        None => return None,
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
    url
}

/// The method and request target of an HTTP/1.x request head.
async fn read_target(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    target.starts_with('/').then(|| (method.to_owned(), target.to_owned()))
}

/// The `state` query parameter of a request target, decoded.
fn state_of(target: &str) -> Option<String> {
    let query = target.split('#').next()?.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
}

fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}
