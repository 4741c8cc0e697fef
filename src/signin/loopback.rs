//! The loopback redirect listener for desktop apps (RFC 8252 §7.3): an HTTP
//! listener on `127.0.0.1` with a port chosen by the OS, which takes the one
//! redirect the browser brings back and closes.
//!
//! The browser's request is held open while the app exchanges the code, so the
//! page it finally shows tells the real outcome (signed in, refused, failed),
//! never "signed in" for a redirect that carried `error=access_denied` or a code
//! the server then rejected. The pages are the app's to replace ([`LoopbackPages`]).

use crate::error::AuthError;
use crate::session::Session;
use crate::AuthClient;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::PendingAuthorization;

/// Longest request head read from a connection (a redirect URL plus headers).
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// A connection that sends nothing for this long is dropped (browsers pre-connect).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Writing the answer page to a browser that stopped reading gives up after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const CALLBACK_PATH: &str = "/callback";
/// The placeholder in [`LoopbackPages`]' failure page replaced by the error.
const ERROR_PLACEHOLDER: &str = "{error}";

const SUCCESS_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Signed in</title>\
<p>You are signed in. You can close this window and return to the app.</p>";
const FAILURE_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Sign-in failed</title>\
<p>The sign-in did not complete: {error}</p><p>Return to the app to try again.</p>";
/// The answer to a callback whose `state` is not the sign-in's: a forged callback
/// must not end the wait.
const NOT_THIS_SIGN_IN: &str = "<!doctype html><meta charset=\"utf-8\"><title>Not this sign-in</title>\
<p>This link does not belong to the sign-in in progress.</p>";
/// Shown when the app gives no outcome (the deprecated [`LoopbackRedirect::wait`], or a
/// [`LoopbackCallback`] dropped unanswered): it claims neither success nor failure.
const NEUTRAL_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Sign-in</title>\
<p>You can close this window and return to the app.</p>";

/// The pages the browser shows at the end of a loopback sign-in.
///
/// The failure page may contain `{error}`, replaced by the error's message
/// (HTML-escaped; error messages never carry secrets).
///
/// ```
/// use tokenkeeper::signin::LoopbackPages;
/// let pages = LoopbackPages::new(
///     "<!doctype html><title>Example</title><p>Welcome back! Return to Example.</p>",
///     "<!doctype html><title>Example</title><p>That did not work: {error}</p>",
/// );
/// # let _ = pages;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopbackPages {
    success: String,
    failure: String,
}

impl LoopbackPages {
    /// Pages of the app's own: `success` after the code was exchanged, `failure`
    /// (with an optional `{error}` placeholder) for anything else.
    pub fn new(success_html: impl Into<String>, failure_html: impl Into<String>) -> Self {
        Self {
            success: success_html.into(),
            failure: failure_html.into(),
        }
    }

    /// The page for an outcome.
    fn render<T>(&self, outcome: &Result<T, AuthError>) -> String {
        match outcome {
            Ok(_) => self.success.clone(),
            Err(error) => self
                .failure
                .replace(ERROR_PLACEHOLDER, &escape_html(&error.to_string())),
        }
    }
}

impl Default for LoopbackPages {
    /// Plain English pages: "You are signed in …" and "The sign-in did not complete: {error} …".
    fn default() -> Self {
        Self::new(SUCCESS_PAGE, FAILURE_PAGE)
    }
}

/// A one-shot redirect listener on `http://127.0.0.1:<port>/callback`.
///
/// Use [`redirect_uri`](Self::redirect_uri) in the
/// [`AuthorizationRequest`](super::AuthorizationRequest), open the URL, then
/// [`complete`](Self::complete). The listener binds the IPv4 loopback literal, not
/// `localhost`, as RFC 8252 §8.3 recommends.
#[derive(Debug)]
pub struct LoopbackRedirect {
    listener: TcpListener,
    redirect_uri: String,
    pages: LoopbackPages,
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
            pages: LoopbackPages::default(),
        })
    }

    /// The same listener answering with the app's own pages.
    pub fn pages(mut self, pages: LoopbackPages) -> Self {
        self.pages = pages;
        self
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The whole desktop sign-in after the browser was opened: waits for the
    /// redirect, completes it with
    /// [`AuthClient::complete_authorization`](crate::AuthClient::complete_authorization),
    /// then shows the browser the outcome (the success page only once the code is
    /// exchanged and the session exists). Returns that same outcome.
    ///
    /// Wrap it in a timeout, or drop it, to give up.
    ///
    /// Only the redirect for `pending` (its `state` matches) ends the wait: a
    /// callback with another `state` is answered 400 and ignored.
    pub async fn complete(
        self,
        client: &AuthClient,
        pending: &PendingAuthorization,
    ) -> Result<Arc<Session>, AuthError> {
        let callback = self.receive_matching(Some(pending.state().to_owned())).await?;
        let outcome = client.complete_authorization(pending, callback.url()).await;
        callback.respond(&outcome).await;
        outcome
    }

    /// Waits for the browser's `GET /callback?...` and returns it **unanswered**:
    /// the browser keeps waiting until [`LoopbackCallback::respond`] reports the
    /// outcome. For apps that complete the redirect themselves; most use
    /// [`complete`](Self::complete). Other requests (a favicon, a pre-connect that
    /// sends nothing) are answered 404 or dropped. The listener closes on return.
    pub async fn receive(self) -> Result<LoopbackCallback, AuthError> {
        self.receive_matching(None).await
    }

    /// Waits for the browser's `GET /callback?...` **for `pending`** (its `state`
    /// matches), answers it with a page that claims no outcome, closes the listener
    /// and returns the full redirect URL. A callback with another `state` is answered
    /// 400 and the wait goes on. After `timeout` without the right redirect:
    /// [`AuthError::Cancelled`]. Prefer [`complete`](Self::complete), whose page tells
    /// the outcome.
    pub async fn wait_for(self, pending: &PendingAuthorization, timeout: Duration) -> Result<String, AuthError> {
        let expected = pending.state().to_owned();
        let mut callback = tokio::time::timeout(timeout, self.receive_matching(Some(expected)))
            .await
            .unwrap_or(Err(AuthError::Cancelled))?;
        let url = std::mem::take(&mut callback.url);
        callback.answer(NEUTRAL_PAGE.to_owned()).await;
        Ok(url)
    }

    async fn receive_matching(self, expected: Option<String>) -> Result<LoopbackCallback, AuthError> {
        let (found, mut callbacks) = mpsc::channel::<(String, TcpStream)>(1);
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
                        if let Some(callback) = triage(stream, peer, &base, expected.as_deref()).await {
                            let _ = found.send(callback).await;
                        }
                    });
                }
                Some((url, stream)) = callbacks.recv() => {
                    return Ok(LoopbackCallback { url, stream: Some(stream), pages: self.pages });
                }
            }
        }
    }

    /// Waits for the redirect and returns its URL, answering the browser at once
    /// with a page that claims no outcome ("return to the app").
    #[deprecated(
        note = "the browser cannot learn the outcome; use `complete` (or `receive` and `LoopbackCallback::respond`)"
    )]
    pub async fn wait(self) -> Result<String, AuthError> {
        let mut callback = self.receive().await?;
        let url = std::mem::take(&mut callback.url);
        callback.answer(NEUTRAL_PAGE.to_owned()).await;
        Ok(url)
    }
}

/// The browser's redirect, received and not yet answered: the browser shows a
/// loading page until [`respond`](Self::respond). Dropped unanswered, it shows a
/// neutral "return to the app" page (best effort, without waiting).
pub struct LoopbackCallback {
    url: String,
    stream: Option<TcpStream>,
    pages: LoopbackPages,
}

impl LoopbackCallback {
    /// The full redirect URL, for
    /// [`AuthClient::complete_authorization`](crate::AuthClient::complete_authorization).
    /// It carries the one-time code: do not log it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Shows the browser the page for `outcome` (see [`LoopbackPages`]) and closes
    /// the connection. A browser that has gone away is ignored.
    pub async fn respond<T>(mut self, outcome: &Result<T, AuthError>) {
        let page = self.pages.render(outcome);
        self.answer(page).await;
    }

    async fn answer(&mut self, page: String) {
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, write_page(&mut stream, "200 OK", &page)).await;
        }
    }
}

impl fmt::Debug for LoopbackCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL holds the authorization code.
        f.debug_struct("LoopbackCallback")
            .field("answered", &self.stream.is_none())
            .finish_non_exhaustive()
    }
}

impl Drop for LoopbackCallback {
    fn drop(&mut self) {
        // A cancelled or panicking app must not leave the browser spinning: answer
        // without awaiting. The page is small, so one write nearly always fits in the
        // socket buffer; if not, the browser sees the connection close.
        if let Some(stream) = self.stream.take() {
            let _ = stream.try_write(response("200 OK", NEUTRAL_PAGE).as_bytes());
        }
    }
}

/// Reads one connection's request: the callback's URL with its still-open
/// stream, or `None` after answering anything else with 404.
async fn triage(
    mut stream: TcpStream,
    peer: SocketAddr,
    redirect_uri: &str,
    expected: Option<&str>,
) -> Option<(String, TcpStream)> {
    if !peer.ip().is_loopback() {
        return None;
    }
    let (method, target) = tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream))
        .await
        .ok()
        .flatten()?;
    if method == "GET" && path_of(&target) == CALLBACK_PATH {
        if expected.is_some_and(|expected| state_of(&target).as_deref() != Some(expected)) {
            let answer = write_page(&mut stream, "400 Bad Request", NOT_THIS_SIGN_IN);
            let _ = tokio::time::timeout(WRITE_TIMEOUT, answer).await;
            return None;
        }
        let origin = redirect_uri.strip_suffix(CALLBACK_PATH).unwrap_or(redirect_uri);
        return Some((format!("{origin}{target}"), stream));
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write_page(&mut stream, "404 Not Found", "")).await;
    None
}

fn response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn write_page(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = stream.write_all(response(status, body).as_bytes()).await;
    let _ = stream.shutdown().await;
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

/// Text for an HTML body: the server's error description is not trusted markup.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
