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
 *                         store = MyKeystoreStore(context))
 * scope.launch { client.reauthenticationRequired.collect { showLogin(it.identity) } }
 * ```
 *
 * @throws AuthException.InvalidConfig for an unusable [config].
 */
class AuthClient(config: AuthConfig, store: TokenStore? = null, listener: AuthEventListener? = null) : AutoCloseable {

    private val relay = EventRelay(listener)

    /** The generated handle, for calls this class does not wrap. */
    val native: NativeAuthClient = NativeAuthClient(config, store, relay)

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
        val created = Session(handle) { sessions.remove(id, it) }
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
