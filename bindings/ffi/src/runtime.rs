//! The tokio runtime the library owns, on which every exported async method runs.
//!
//! UniFFI polls an exported future from the foreign side (Kotlin coroutines, Swift
//! tasks) and has no tokio context, while the core needs one (reqwest's I/O, timers,
//! its own spawned refresh tasks). So each async method hands its core future to this
//! runtime with [`run`] and awaits the `JoinHandle`: the handle is an ordinary
//! future, woken by the runtime's worker when the work completes, which is all UniFFI's
//! foreign executor needs. A cancelled Kotlin coroutine or Swift task drops only the
//! handle; the core future goes on, so a shared token request is never torn down
//! halfway (the core's single-flight relies on that too).

use super::error::AuthError;
use std::future::Future;
use std::sync::LazyLock;
use tokio::runtime::{Builder, Runtime};

/// Two workers: token requests are few and I/O-bound; a phone has no cores to spare.
const WORKER_THREADS: usize = 2;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("tokenkeeper")
        .enable_all()
        .build()
        // Only fails when the OS refuses threads; nothing can work without them.
        .expect("tokenkeeper: cannot start its tokio runtime")
});

/// The library's runtime, for code that must enter its context synchronously.
pub(crate) fn runtime() -> &'static Runtime {
    &RUNTIME
}

/// Runs `future` on the library's runtime and waits for its output without blocking.
pub(crate) async fn run<F, T>(future: F) -> Result<T, AuthError>
where
    F: Future<Output = Result<T, sdk::AuthError>> + Send + 'static,
    T: Send + 'static,
{
    match RUNTIME.spawn(future).await {
        Ok(result) => result.map_err(AuthError::from),
        Err(join_error) => Err(AuthError::Internal(format!(
            "tokenkeeper task failed: {}",
            if join_error.is_panic() { "panicked" } else { "cancelled" }
        ))),
    }
}
