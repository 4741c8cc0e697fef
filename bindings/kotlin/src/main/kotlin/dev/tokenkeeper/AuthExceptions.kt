// Hand-written additions to the generated AuthException (tokenkeeper.kt, never edited).
package dev.tokenkeeper

/**
 * Whether "try again later" is the right answer: the network failed or timed out, a
 * server answered HTTP 5xx or 429, a revoked token was dropped under
 * `RecoveryPolicy.CLEAR_AND_FAIL`, or a renewed token's request was not re-sent. The
 * same rule as the core's `AuthError::is_retryable` (each of those is its own subclass
 * here) and Swift's `AuthError.isRetryable`.
 *
 * ```kotlin
 * catch (e: AuthException) {
 *     if (e.isRetryable) showOffline() else if (e is AuthException.ReauthenticationRequired) showLogin() else report(e)
 * }
 * ```
 */
val AuthException.isRetryable: Boolean
    get() = this is AuthException.TemporarilyUnavailable ||
        this is AuthException.TokenRevoked ||
        this is AuthException.RequestNotReplayed
