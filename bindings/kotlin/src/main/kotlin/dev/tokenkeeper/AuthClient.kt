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
 * With DPoP on ([AuthConfig.dpop]), set `AuthConfig(dpopKeys = AndroidKeystoreDpopKeys(context))`
 * so the proof keys are non-exportable Keystore keys instead of software keys in the record.
 *
 * Every request the SDK sends goes through [transport]: by default an [OkHttpTransport]
 * on a client of its own; pass one over the app's `OkHttpClient` so its trust store,
 * pinning, proxy and interceptors apply. `null` uses the Rust library's built-in stack
 * (reqwest with its own root certificates), which the desktop library has and the
 * Android library, built without it, does not.
 *
 * @throws AuthException.InvalidConfig for an unusable [config].
 */
class AuthClient private constructor(
    private val relay: EventRelay,
    private val clock: ManualClock?,
    private val rotation: TokenRotation?,
    /** DPoP is configured (required or when the server supports it): sessions ask for proofs. */
    private val dpop: Boolean,
    /** The generated handle, for calls this class does not wrap. */
    val native: NativeAuthClient,
) : AutoCloseable {

    constructor(
        config: AuthConfig,
        store: TokenStore? = null,
        listener: AuthEventListener? = null,
        /** Tests only: a [ManualClock] the core and the token mirrors read instead of the device's clock. */
        clock: ManualClock? = null,
        transport: HttpTransport? = OkHttpTransport(),
    ) : this(EventRelay(listener), config, store, clock, transport)

    private constructor(
        relay: EventRelay,
        config: AuthConfig,
        store: TokenStore?,
        clock: ManualClock?,
        transport: HttpTransport?,
    ) : this(relay, clock, config.tokenRotation, config.dpop.sendsProofs(), NativeAuthClient(config, store, relay, clock, transport))

    companion object {
        /**
         * A client configured from the authorization server's metadata (RFC 8414
         * `/.well-known/oauth-authorization-server`, then OpenID Connect discovery),
         * fetched through [transport]: the token, revocation, authorization and device
         * endpoints, the issuer (redirects are then checked against it, RFC 9207), and the
         * OpenID Connect key set. Every other setting comes from [settings] (its endpoints,
         * issuer and client id are ignored).
         *
         * ```kotlin
         * val client = AuthClient.discover("https://as.example.com", "my-app",
         *     settings = AuthConfig(tokenEndpoint = "", clientId = "my-app", scopes = listOf("read")),
         *     store = KeystoreTokenStore(context))
         * ```
         *
         * @throws AuthException.IssuerMismatch the metadata names another issuer.
         * @throws AuthException.InvalidResponse no metadata at either well-known URL.
         * @throws AuthException.TemporarilyUnavailable the server could not be reached.
         */
        suspend fun discover(
            issuer: String,
            clientId: String,
            settings: AuthConfig? = null,
            store: TokenStore? = null,
            listener: AuthEventListener? = null,
            clock: ManualClock? = null,
            transport: HttpTransport? = OkHttpTransport(),
        ): AuthClient {
            val relay = EventRelay(listener)
            val native = discoverAuthClient(issuer, clientId, settings, store, relay, clock, transport)
            return AuthClient(relay, clock, settings?.tokenRotation, settings?.dpop.sendsProofs(), native)
        }
    }


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

    /** The signed-in session of [account], if any: the same object the sign-in (or [login]) returned. */
    fun session(account: String): Session? = native.session(account)?.let(::wrap)

    /** After a restart: the session of [account] from the refresh token in the [TokenStore]. */
    suspend fun restore(account: String): Session = wrap(native.restore(account))

    /**
     * Starts a browser sign-in (authorization code with PKCE S256 and a fresh `state`,
     * RFC 7636, RFC 8252) for the user the app calls [account] (the session's
     * [Session.account]). Open [PendingAuthorization.url] in Custom Tabs (never a
     * `WebView`) and keep the returned object until the redirect arrives (the PKCE
     * verifier lives only in it), or [saveAuthorization] it if the process may die
     * meanwhile (Android). [scopes] replaces the config's; [extraParams] adds query
     * parameters; [nonce] asks for an OpenID Connect nonce (implied by `openid` in scope);
     * [options] sets `max_age`, `prompt`, `login_hint` and `acr_values` (a stronger login,
     * RFC 9470), whose `auth_time` is then checked.
     *
     * @throws AuthException.InvalidConfig without an `authorizationEndpoint` or with a bad [redirectUri].
     */
    fun authorizationRequest(
        account: String,
        redirectUri: String,
        scopes: List<String>? = null,
        extraParams: Map<String, String> = emptyMap(),
        nonce: Boolean = false,
        options: SignInOptions? = null,
    ): PendingAuthorization = native.authorizationRequest(account, redirectUri, scopes, extraParams, nonce, options)

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
     * The sign-in as an opaque string that survives process death: keep it in
     * `onSaveInstanceState` or a file (its PKCE verifier, `state`, `nonce` and DPoP key are
     * sealed with AES-256-GCM under a key kept in this client's [TokenStore], so the string
     * is useless anywhere else). A new process completes it with
     * [completeSavedAuthorization] within 15 minutes, once.
     *
     * @throws AuthException.InvalidConfig without a [TokenStore].
     */
    suspend fun saveAuthorization(pending: PendingAuthorization): String = native.saveAuthorization(pending)

    /**
     * Finishes a saved sign-in ([saveAuthorization]), possibly in a new process: the
     * redirect activity needs only the saved string and the redirect URL.
     *
     * @throws AuthException.SavedSignInRefused it expired, was completed already (a
     *   replay: nothing was sent), is unreadable (tampered, another app's) or its key is gone.
     * @throws AuthException.StateMismatch and the rest of [completeAuthorization]'s errors.
     */
    suspend fun completeSavedAuthorization(saved: String, redirectUrl: String): Session =
        wrap(native.completeSavedAuthorization(saved, redirectUrl))

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

/** Whether a client configured with this mode may send DPoP proofs. */
private fun DpopMode?.sendsProofs(): Boolean = this != null && this != DpopMode.OFF
