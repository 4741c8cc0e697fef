// Hand-written Kotlin sugar over the generated bindings (tokenkeeper.kt). No token
// logic lives here: caching, single-flight and recovery are the Rust core's.
package dev.tokenkeeper

import java.io.IOException
import kotlinx.coroutines.runBlocking
import okhttp3.Interceptor
import okhttp3.Request
import okhttp3.Response

/**
 * An OkHttp [Interceptor] that authorizes every request with [session]'s access token
 * (`Authorization: Bearer …`) and recovers from a revoked or expired token.
 *
 * ```kotlin
 * val http = OkHttpClient.Builder()
 *     .addInterceptor(TokenKeeperInterceptor(session))
 *     .build()
 * ```
 *
 * On a `401 Unauthorized`, it hands the failed token and the `WWW-Authenticate`
 * headers to [Session.handleUnauthorized], the core's own decision (one renewal per
 * revocation, shared by every request that failed with the same token; a 401 that is
 * not about the token comes back unchanged), and sends the request once more with the
 * new token when replaying it is safe ([isReplaySafe]: an idempotent method, RFC 9110
 * §9.2.2, or a request with an `Idempotency-Key` header), or
 * one tagged `.tag(TokenKeeperInterceptor.Replayable::class.java, TokenKeeperInterceptor.Replayable)`.
 * Otherwise the token is still renewed, for the next request, and the 401 is
 * returned as is: the app decides whether sending it again is safe. This is the
 * same rule the Rust core's `Session::send` applies.
 *
 * Threading: OkHttp interceptors are blocking, so the suspend calls run under
 * [runBlocking] on OkHttp's calling thread: a dispatcher thread for `enqueue`, the
 * caller's thread for `execute` (never call `execute` on Android's main thread). A
 * fresh cached token is read with [Session.cachedAccessToken], without any coroutine;
 * only a token request blocks that thread (the Rust runtime does the network I/O;
 * OkHttp's thread just waits).
 *
 * Errors: an [AuthException] (for example [AuthException.ReauthenticationRequired])
 * is thrown wrapped in a [TokenKeeperIOException], as OkHttp requires interceptors to
 * throw only [IOException]s; read the [AuthException] from its `cause`.
 */
class TokenKeeperInterceptor(private val session: Session) : Interceptor {

    /** Tag a request with this to allow one replay after a 401 whatever its method. */
    object Replayable

    @Throws(IOException::class)
    override fun intercept(chain: Interceptor.Chain): Response {
        val request = chain.request()
        // The common case, a fresh cached token, is a plain call: no coroutine, no wait.
        val token = session.cachedAccessToken() ?: authCall { session.accessToken() }
        val response = chain.proceed(request.withToken(token))
        if (response.code != 401) return response

        // Several challenge lines combine into one list (RFC 9110 §5.3).
        val renewed = authCall { session.handleUnauthorized(token, response.headers("WWW-Authenticate")) }
            ?: return response
        if (!isReplayable(request)) return response
        response.close()
        return chain.proceed(request.withToken(renewed))
    }

    private fun <T> authCall(block: suspend () -> T): T =
        try {
            runBlocking { block() }
        } catch (e: AuthException) {
            throw TokenKeeperIOException(e)
        }

    private fun Request.withToken(token: AccessToken): Request =
        newBuilder().header("Authorization", "Bearer " + token.value).build()

    companion object {

        /** Whether [request] may be sent again after its token was renewed. */
        @JvmStatic
        fun isReplayable(request: Request): Boolean =
            isReplaySafe(request.method, request.header("Idempotency-Key") != null) ||
                request.tag(Replayable::class.java) != null
    }
}

/** An [AuthException] on its way through OkHttp, which accepts only [IOException]s. */
class TokenKeeperIOException(override val cause: AuthException) :
    IOException(cause.message, cause)
