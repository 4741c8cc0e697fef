// Hand-written Kotlin API over the generated native handles (tokenkeeper.kt).
package dev.tokenkeeper

import java.util.concurrent.ConcurrentHashMap
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.asSharedFlow

/**
 * One authorization server and one OAuth client, with its sessions: at most one active
 * token per identity. Create one per server for the app's lifetime and share it.
 *
 * ```kotlin
 * val client = AuthClient(AuthConfig(tokenEndpoint = "https://as.example.com/oauth2/token",
 *                                    clientId = "my-app", scopes = listOf("read")),
 *                         store = MyKeystoreStore(context),
 *                         transport = OkHttpTransport(appOkHttpClient))
 * scope.launch { client.reauthenticationRequired.collect { showLogin(it.identity) } }
 * ```
 *
 * Every request the SDK sends goes through [transport]: by default an [OkHttpTransport]
 * on a client of its own; pass one over the app's `OkHttpClient` so its trust store,
 * pinning, proxy and interceptors apply. `null` uses the Rust library's built-in stack
 * (reqwest with its own root certificates), which the desktop library has and the
 * Android library, built without it, does not.
 *
 * @throws AuthException.InvalidConfig for an unusable [config].
 */
class AuthClient(
    config: AuthConfig,
    store: TokenStore? = null,
    listener: AuthEventListener? = null,
    /** Tests only: a [ManualClock] the core and the token mirrors read instead of the device's clock. */
    private val clock: ManualClock? = null,
    transport: HttpTransport? = OkHttpTransport(),
) : AutoCloseable {

    private val relay = EventRelay(listener)

    /** The generated handle, for calls this class does not wrap. */
    val native: NativeAuthClient = NativeAuthClient(config, store, relay, clock, transport)

    private val rotation: TokenRotation? = config.tokenRotation

    private val dpop: Boolean = config.dpop.let { it != null && it != DpopMode.OFF }

    private val sessions = ConcurrentHashMap<Long, Session>()

    /**
     * "This identity needs the user": one item each time a session's credentials are all
     * rejected (its state becomes [SessionState.ReauthenticationRequired]). Route to the
     * login screen from here instead of unwrapping exceptions at every call site. Hot;
     * the 16 most recent items are buffered for a slow collector.
     */
    val reauthenticationRequired: SharedFlow<AuthEvent.ReauthenticationRequired> = relay.reauthentication.asSharedFlow()

    /** The client's own session (client-credentials grant, RFC 6749 §4.4). */
    fun clientCredentialsSession(): Session = wrap(native.clientCredentialsSession())

    /** Signs [username] in with the password grant (RFC 6749 §4.3); the password stays in native memory only. */
    suspend fun login(username: String, password: String): Session = wrap(native.login(username, password))

    /** The signed-in session of [username], if any: the same object [login] returned. */
    fun session(username: String): Session? = native.session(username)?.let(::wrap)

    /** After a restart: the session of [username] from the refresh token in the [TokenStore]. */
    suspend fun restore(username: String): Session = wrap(native.restore(username))

    /**
     * Starts a browser sign-in (authorization code with PKCE S256 and a fresh `state`,
     * RFC 7636, RFC 8252) for the user the app calls [account] (the session's
     * [Session.username]). Open [PendingAuthorization.url] in Custom Tabs (never a
     * `WebView`) and keep the returned object until the redirect arrives: the PKCE
     * verifier lives only in it. [scopes] replaces the config's; [extraParams] adds query
     * parameters such as `prompt` or `login_hint`; [nonce] asks for an OpenID Connect nonce.
     *
     * @throws AuthException.InvalidConfig without an `authorizationEndpoint` or with a bad [redirectUri].
     */
    fun authorizationRequest(
        account: String,
        redirectUri: String,
        scopes: List<String>? = null,
        extraParams: Map<String, String> = emptyMap(),
        nonce: Boolean = false,
    ): PendingAuthorization = native.authorizationRequest(account, redirectUri, scopes, extraParams, nonce)

    /**
     * Finishes a browser sign-in with the URL the browser was redirected to and returns
     * the user's [Session], registered like one from [login].
     *
     * @throws AuthException.StateMismatch a redirect of another attempt (nothing was exchanged).
     * @throws AuthException.IssuerMismatch the redirect's `iss` is not the configured issuer (RFC 9207).
     * @throws AuthException.AccessDenied the user or the server refused.
     * @throws AuthException.InvalidRedirect the URL is not an authorization response.
     * @throws AuthException.InvalidGrant a spent or foreign code.
     */
    suspend fun completeAuthorization(pending: PendingAuthorization, redirectUrl: String): Session =
        wrap(native.completeAuthorization(pending, redirectUrl))

    /**
     * Starts a device sign-in (RFC 8628) for [account]: show
     * [DeviceAuthorization.userCode] and [DeviceAuthorization.verificationUri], then call
     * [completeDeviceAuthorization].
     */
    suspend fun startDeviceAuthorization(account: String, scopes: List<String>? = null): DeviceAuthorization =
        native.startDeviceAuthorization(account, scopes)

    /**
     * Polls (in Rust, honouring the server's `interval` and `slow_down`) until the user
     * approves, then returns the [Session]. Cancelling the coroutine does not stop the
     * polling; [DeviceAuthorization.cancel] does.
     *
     * @throws AuthException.AccessDenied the user refused.
     * @throws AuthException.DeviceCodeExpired the codes expired first: start again.
     * @throws AuthException.Cancelled [DeviceAuthorization.cancel] was called.
     */
    suspend fun completeDeviceAuthorization(device: DeviceAuthorization): Session =
        wrap(native.completeDeviceAuthorization(device))

    /**
     * A [Session] for [account] from tokens the app already holds (another SDK signed the
     * user in, or an older app version stored them); no network traffic. The refresh
     * token, if any, goes to the [TokenStore].
     */
    suspend fun importTokens(account: String, tokens: ImportedTokens, scopes: List<String>? = null): Session =
        wrap(native.importTokens(account, tokens, scopes))

    /** Frees the native handle now (otherwise a cleaner frees it after garbage collection). */
    override fun close() = native.close()

    // One Session object (and so one mirror and one observer) per core session, keyed
    // by the core session's id (stable while the stored handle keeps it alive).
    private fun wrap(handle: NativeSession): Session {
        val id = handle.instanceId()
        sessions[id]?.let { existing ->
            handle.close()
            return existing
        }
        val created = Session(handle, clock, rotation, dpop) { sessions.remove(id, it) }
        val raced = sessions.putIfAbsent(id, created)
        if (raced != null) {
            handle.close()
            return raced
        }
        return created.start()
    }
}

/** Forwards events to the app's listener and feeds [AuthClient.reauthenticationRequired]. */
private class EventRelay(private val app: AuthEventListener?) : AuthEventListener {
    val reauthentication = MutableSharedFlow<AuthEvent.ReauthenticationRequired>(
        extraBufferCapacity = 16,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    override fun onEvent(event: AuthEvent) {
        if (event is AuthEvent.ReauthenticationRequired) reauthentication.tryEmit(event)
        app?.onEvent(event)
    }
}
