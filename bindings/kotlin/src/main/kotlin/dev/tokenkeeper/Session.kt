// Hand-written Kotlin API over the generated native handles (tokenkeeper.kt, never
// edited). The token logic stays in Rust; this file only keeps a copy of the token
// that the core keeps current, so a warm read never crosses the FFI.
package dev.tokenkeeper

import kotlin.time.Duration
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow

/**
 * One identity (the client, or one user) and its token. Get it from [AuthClient]; the
 * client returns the same [Session] object for the same identity.
 *
 * Reads are served from a mirror of the core's cached token, updated synchronously by
 * the core at every change (issued, refreshed, rotated, recovered, invalidated, logged
 * out): while the token is fresh, [cachedAccessToken] and [accessToken] are a volatile
 * read and a clock read in Kotlin. Past its refresh time they call the core, so the
 * refresh margin, the background refresh and the single flight stay in Rust.
 *
 * All methods are safe to call from any thread or coroutine.
 */
class Session internal constructor(
    /** The generated handle, for calls this class does not wrap. */
    val native: NativeSession,
    /** The client's test clock, if it has one; the device's clock otherwise. */
    private val clock: ManualClock? = null,
    /** The response headers of per-response token rotation, if the config enables it. */
    internal val rotation: TokenRotation? = null,
    /** Whether the client sends DPoP proofs ([AuthConfig.dpop] is not off). */
    internal val dpop: Boolean = false,
    private val onFinished: (Session) -> Unit = {},
) : AutoCloseable {

    private val mirror = TokenMirror(native.state())

    /**
     * Where the session stands, updated by the core: signed in (with expiry),
     * re-authentication required, logged out. It stays `SignedIn` through a silent
     * recovery: between two tokens it keeps the last token's expiry rather than
     * showing `SignedIn(expiresAt = null)` (which only [invalidate] shows). Collect it on a real dispatcher (Main,
     * Default): a `Dispatchers.Unconfined` collector would run inside the core's
     * notification, where calling back into the session is not allowed.
     */
    val state: StateFlow<SessionState> = mirror.state

    /** Starts the mirror; separate from construction so a duplicate wrapper registers nothing. */
    internal fun start(): Session {
        native.observe(mirror)
        return this
    }

    /** Who this session is: `client` or `user:alice`, then any non-default scope, audience or resource. */
    fun identity(): String = native.identity()

    /** The account name the app gave this user session (sign-in, [AuthClient.login], [AuthClient.restore]); `null` for the client's own session. */
    fun account(): String? = native.account()

    /** The old name of [account]. */
    @Deprecated("One name for the account across the SDK", ReplaceWith("account()"))
    fun username(): String? = account()

    /**
     * The cached token while it is fresh (no coroutine, no FFI call), else the core's
     * answer (`null`: call [accessToken]). For blocking callers such as interceptors.
     */
    fun cachedAccessToken(): AccessToken? = mirror.fresh(nowMillis()) ?: native.cachedAccessToken()

    /**
     * A valid access token: from the mirror while fresh, otherwise from the core (one
     * token request for all callers). Inside the refresh margin the core answers with
     * the still-valid token and refreshes it in the background ([waitForRefresh]).
     */
    suspend fun accessToken(): AccessToken = mirror.fresh(nowMillis()) ?: native.accessToken()

    /** A token valid for at least [minValidity] (Auth0's `minTtl`): refreshes first if the cached one expires sooner. */
    suspend fun accessToken(minValidity: Duration): AccessToken {
        val now = nowMillis()
        val token = mirror.fresh(now)
        if (token != null && token.expiresAt.time - now >= minValidity.inWholeMilliseconds) return token
        return native.accessTokenValidFor(minValidity)
    }

    /** A new token now, whatever the cache holds (joining a token request in flight). */
    suspend fun refresh(): AccessToken = native.refresh()

    /** Waits until the token request in flight (such as a background refresh), if any, has finished. */
    suspend fun waitForRefresh() = native.waitForRefresh()

    /**
     * Per-response token rotation ([AuthConfig.tokenRotation]) for apps with their own
     * HTTP stack: hands the session an API response's headers (name to value) so it
     * adopts the rotated token they carry, if it is newer than the one it holds. The
     * mirror shows it when this returns. [TokenKeeperInterceptor] does this by itself.
     */
    fun observeResponseHeaders(headers: Map<String, String>) = native.observeResponseHeaders(headers)

    /**
     * For apps with their own HTTP stack: the `Authorization` value and, for a DPoP
     * token, the `DPoP` proof for one [method] request to [url] (RFC 9449; single use,
     * ask again for every request and retry). [TokenKeeperInterceptor] does this itself.
     */
    suspend fun authorizationHeaders(method: String, url: String): AuthorizationHeaders =
        native.authorizationHeaders(method, url)

    /** Hands over a `DPoP-Nonce` response header from [url]'s server: the next proof for that origin carries it. */
    fun dpopNonceReceived(url: String, nonce: String) = native.dpopNonceReceived(url, nonce)

    // The device clock in production: one null check on the hot path.
    private fun nowMillis(): Long = clock?.nowEpochMillis() ?: System.currentTimeMillis()

    /**
     * After a resource server answered 401 to a request made with [failedToken]: a token
     * to retry with (once), or `null` when the 401 is not about the token. Pass every
     * `WWW-Authenticate` header value.
     */
    suspend fun handleUnauthorized(failedToken: AccessToken, wwwAuthenticate: List<String>): AccessToken? =
        native.handleUnauthorized(failedToken, wwwAuthenticate)

    /** As above, for a caller that kept only the token's value (what it put after `Bearer `). */
    suspend fun handleUnauthorized(failedToken: String, wwwAuthenticate: List<String>): AccessToken? =
        native.handleUnauthorizedValue(failedToken, wwwAuthenticate)

    /** Drops the cached token (told out of band it is no longer good). The mirror is empty when this returns. */
    fun invalidate() {
        mirror.clear()
        native.invalidate()
    }

    /** Revokes the tokens (RFC 7009) and forgets them. The mirror is empty before the network call starts. */
    suspend fun logout() {
        mirror.clear()
        try {
            native.logout()
        } finally {
            onFinished(this)
        }
    }

    /**
     * Frees the native handle now (otherwise a cleaner frees it after garbage
     * collection). The client then hands out a new `Session` object for this identity.
     */
    override fun close() {
        onFinished(this)
        native.close()
    }

    override fun toString(): String = "Session(${identity()})"
}

/**
 * The Kotlin copy of one session's token: an immutable snapshot behind a volatile
 * field, replaced only by a newer generation. Registered with the core as the
 * session's [TokenObserver]; it holds no reference to the session (no cycle through
 * native code, so a finished session can be freed).
 */
internal class TokenMirror(initial: SessionState) : TokenObserver {

    private class Snapshot(val generation: Long, val token: AccessToken?, val freshUntilMillis: Long)

    @Volatile
    private var snapshot = Snapshot(Long.MIN_VALUE, null, Long.MIN_VALUE)
    private val states = MutableStateFlow(initial)
    val state: StateFlow<SessionState> = states.asStateFlow()

    /** The token if it is fresh at [nowMillis]. */
    fun fresh(nowMillis: Long): AccessToken? {
        val current = snapshot
        return if (nowMillis < current.freshUntilMillis) current.token else null
    }

    // Set by the app's own invalidate() or logout(): the empty state that follows is news
    // to show, not a step between two tokens.
    private var cleared = false

    /** Forgets the token at once; the core's own notification follows with a newer generation. */
    @Synchronized
    fun clear() {
        snapshot = Snapshot(snapshot.generation, null, Long.MIN_VALUE)
        cleared = true
    }

    @Synchronized
    override fun onTokenChange(change: TokenChange) {
        // The core delivers in generation order; the check keeps a stale copy out anyway.
        if (change.generation <= snapshot.generation) return
        snapshot = Snapshot(
            change.generation,
            change.token,
            if (change.token == null) Long.MIN_VALUE else change.freshUntilEpochMillis ?: Long.MIN_VALUE,
        )
        states.value = if (cleared) change.state else steady(states.value, change.state)
        cleared = false
    }
}

/**
 * The state to show after [next]: a session that goes from one token to the next on
 * its own (a silent recovery after a revocation, a refresh) passes through "signed in,
 * no token cached"; a bound UI would flicker on it. So a `SignedIn` without expiry that
 * follows a `SignedIn` with one keeps the last expiry until the next token (or a
 * `ReauthenticationRequired`, a `LoggedOut`) arrives. The app's own `invalidate()`
 * still shows the empty state (the mirror's `clear` bypasses this).
 */
internal fun steady(current: SessionState, next: SessionState): SessionState =
    if (next is SessionState.SignedIn && next.expiresAt == null &&
        current is SessionState.SignedIn && current.expiresAt != null
    ) current else next
