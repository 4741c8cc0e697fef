// Hand-written Kotlin sugar over the generated bindings (tokenkeeper.kt). No token
// logic lives here: caching, single-flight and recovery are the Rust core's.
package dev.tokenkeeper

import java.io.IOException
import java.util.Locale
import kotlinx.coroutines.runBlocking
import okhttp3.HttpUrl
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.Interceptor
import okhttp3.Request
import okhttp3.Response

/**
 * An OkHttp [Interceptor] that authorizes requests to the hosts the app names with
 * [session]'s access token (`Authorization: Bearer …`) and recovers from a revoked or
 * expired token. Requests to any other host pass through untouched, so one shared
 * `OkHttpClient` can call third-party services without leaking the token.
 *
 * ```kotlin
 * val http = OkHttpClient.Builder()
 *     .addInterceptor(TokenKeeperInterceptor(session, listOf("api.example.com")))
 *     .build()
 * ```
 *
 * Each entry of [allowedHosts] is either a host name (`api.example.com`: https on any
 * port) or an origin (`https://api.example.com:8443`, `http://10.0.2.2:8080` for an
 * emulator: exactly that scheme, host and port). Matching ignores case; there is no
 * wildcard and no subdomain matching. An empty list is rejected.
 *
 * On a `401 Unauthorized`, it hands the failed token and the `WWW-Authenticate`
 * headers to [Session.handleUnauthorized], the core's own decision (one renewal per
 * revocation, shared by every request that failed with the same token; a 401 that is
 * not about the token comes back unchanged), and sends the request once more with the
 * new token when replaying it is safe: an idempotent method (RFC 9110 §9.2.2), an
 * `Idempotency-Key` header, or the [Replayable] tag — and in every case a body that
 * can be sent twice. A one-shot or duplex body ([okhttp3.RequestBody.isOneShot],
 * [okhttp3.RequestBody.isDuplex]) is never replayed. Otherwise the token is still
 * renewed, for the next request, and the 401 is returned as is.
 *
 * With DPoP ([AuthConfig.dpop], RFC 9449) every request gets a fresh proof from the
 * core: `Authorization: DPoP …` and `DPoP: <proof>` for exactly this method and URL
 * (one native call per request; a proof is single use). A 401 whose challenge says
 * `use_dpop_nonce` hands the response's `DPoP-Nonce` to the session, which answers
 * with the same token (not a revocation), and the request is sent once more with a
 * new proof, under the same replay rule.
 *
 * With per-response token rotation ([AuthConfig.tokenRotation]) it hands each
 * authorized response's rotation headers to the session before returning it, so the
 * next request carries the rotated token.
 *
 * Threading: OkHttp interceptors are blocking. A fresh token is read from the
 * session's Kotlin mirror (no coroutine, no native call); only a token request runs
 * under [runBlocking] on OkHttp's calling thread (never call `execute` on Android's
 * main thread).
 *
 * Errors: an [AuthException] is thrown wrapped in a [TokenKeeperIOException], as OkHttp
 * requires interceptors to throw only [IOException]s; read it from its `cause`.
 */
class TokenKeeperInterceptor(private val session: Session, allowedHosts: Collection<String>) : Interceptor {

    /** Tag a request with this to allow one replay after a 401 whatever its method. */
    object Replayable

    private val hosts: Set<String>
    private val origins: Set<Origin>

    init {
        require(allowedHosts.isNotEmpty()) { "name at least one host that may receive the token" }
        val (withScheme, bare) = allowedHosts.map { it.trim() }.partition { "://" in it }
        hosts = bare.map { it.lowercase(Locale.ROOT) }.toSet()
        origins = withScheme.map { Origin.of(it.toHttpUrl()) }.toSet()
    }

    /** Whether [url] may receive the token. */
    fun isAllowed(url: HttpUrl): Boolean =
        (url.isHttps && url.host in hosts) || Origin.of(url) in origins

    @Throws(IOException::class)
    override fun intercept(chain: Interceptor.Chain): Response {
        val request = chain.request()
        if (!isAllowed(request.url)) return chain.proceed(request)
        if (session.dpop) return interceptWithProofs(chain, request)

        val token = session.cachedAccessToken() ?: authCall { session.accessToken() }
        val response = chain.proceed(request.withToken(token))
        if (response.code != 401) return response.alsoAdoptRotatedToken()

        // Several challenge lines combine into one list (RFC 9110 §5.3).
        val renewed = authCall { session.handleUnauthorized(token.value, response.headers("WWW-Authenticate")) }
            ?: return response
        if (!isReplayable(request)) return response
        response.close()
        return chain.proceed(request.withToken(renewed)).alsoAdoptRotatedToken()
    }

    // DPoP: the core builds each proof (and says Bearer for a server that ignored
    // proofs in IfSupported mode); a nonce 401 comes back from handleUnauthorized with
    // the same token, so the one retry below serves nonces and revocations alike.
    private fun interceptWithProofs(chain: Interceptor.Chain, request: Request): Response {
        val url = request.url.toString()
        val headers = authCall { session.authorizationHeaders(request.method, url) }
        val response = chain.proceed(request.withHeaders(headers))
        if (response.code != 401) return response.alsoAdoptRotatedToken()
        response.header("DPoP-Nonce")?.let { session.dpopNonceReceived(url, it) }
        authCall { session.handleUnauthorized(headers.token, response.headers("WWW-Authenticate")) }
            ?: return response
        if (!isReplayable(request)) return response
        response.close()
        val again = authCall { session.authorizationHeaders(request.method, url) }
        return chain.proceed(request.withHeaders(again)).alsoAdoptRotatedToken()
    }

    private fun Request.withHeaders(headers: AuthorizationHeaders): Request =
        newBuilder().header("Authorization", headers.authorization).apply {
            headers.dpop?.let { header("DPoP", it) } ?: removeHeader("DPoP")
        }.build()

    // Per-response rotation: the session adopts the token this response carries before
    // the caller sees the response, so the next request (and the mirror) uses it.
    private fun Response.alsoAdoptRotatedToken(): Response {
        val rotation = session.rotation ?: return this
        val rotated = header(rotation.tokenHeader) ?: return this
        val headers = HashMap<String, String>(4)
        headers[rotation.tokenHeader] = rotated
        header(rotation.expiryHeader)?.let { headers[rotation.expiryHeader] = it }
        header("Date")?.let { headers["Date"] = it }
        session.observeResponseHeaders(headers)
        return this
    }

    private fun <T> authCall(block: suspend () -> T): T =
        try {
            runBlocking { block() }
        } catch (e: AuthException) {
            throw TokenKeeperIOException(e)
        }

    private fun Request.withToken(token: AccessToken): Request =
        newBuilder().header("Authorization", "Bearer " + token.value).build()

    private data class Origin(val scheme: String, val host: String, val port: Int) {
        companion object {
            fun of(url: HttpUrl) = Origin(url.scheme, url.host, url.port)
        }
    }

    companion object {

        /** Whether [request] may be sent again after its token was renewed. */
        @JvmStatic
        fun isReplayable(request: Request): Boolean {
            val body = request.body
            if (body != null && (body.isOneShot() || body.isDuplex())) return false
            return isReplaySafe(request.method, request.header("Idempotency-Key") != null) ||
                request.tag(Replayable::class.java) != null
        }
    }
}

/** An [AuthException] on its way through OkHttp, which accepts only [IOException]s. */
class TokenKeeperIOException(override val cause: AuthException) :
    IOException(cause.message, cause)
