// OkHttp as tokenkeeper's HTTP stack: the app's client (its Network Security Config,
// pinning, proxy, interceptors and pool) carries every request the Rust core sends.
package dev.tokenkeeper

import java.io.IOException
import java.io.InterruptedIOException
import java.net.ConnectException
import java.net.NoRouteToHostException
import java.net.SocketTimeoutException
import java.net.UnknownHostException
import java.util.concurrent.TimeUnit
import javax.net.ssl.SSLException
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException
import kotlinx.coroutines.suspendCancellableCoroutine
import okhttp3.Call
import okhttp3.Callback
import okhttp3.Headers
import okhttp3.MediaType.Companion.toMediaTypeOrNull
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import okhttp3.Response
import okio.Buffer

/**
 * Sends the SDK's token, revocation, discovery and device requests with OkHttp.
 *
 * Pass the app's own [client] so its trust configuration (Android's Network Security
 * Config, user CAs in debug builds, a `CertificatePinner`), proxy, interceptors and
 * connection pool apply. The transport derives a client from it that shares all of that
 * but never follows redirects (a redirect could carry the client secret or a refresh
 * token to another host; the core refuses one anyway). The core's request timeout is
 * set on each call.
 *
 * Request bodies hold secrets: the array is wiped once the call is over, but OkHttp and
 * an app interceptor see it while the call runs. A logging interceptor must not log the
 * token endpoint's bodies; see docs/android.md.
 *
 * ```kotlin
 * val http = OkHttpClient.Builder().certificatePinner(pins).build()   // the app's client
 * val client = AuthClient(config, store, transport = OkHttpTransport(http))
 * ```
 */
class OkHttpTransport(client: OkHttpClient = sharedDefault) : HttpTransport {

    private val client: OkHttpClient = client.newBuilder()
        .followRedirects(false)
        .followSslRedirects(false)
        .build()

    override suspend fun send(request: HttpRequest): HttpResponse {
        val body = request.body
        try {
            val call = client.newCall(build(request))
            call.timeout().timeout(request.timeoutMs.toLong(), TimeUnit.MILLISECONDS)
            return execute(call, request.maxResponseBytes.toLong())
        } finally {
            // OkHttp wrote the body from this array without copying it into a String.
            body.fill(0)
        }
    }

    private fun build(request: HttpRequest): Request {
        val headers = Headers.Builder()
        var contentType: String? = null
        for (header in request.headers) {
            if (header.name.equals("content-type", ignoreCase = true)) contentType = header.value
            headers.add(header.name, header.value)
        }
        val body = if (request.method == "GET") null else request.body.toRequestBody(contentType?.toMediaTypeOrNull())
        return Request.Builder()
            .url(request.url)
            .headers(headers.build())
            .method(request.method, body)
            .build()
    }

    private suspend fun execute(call: Call, maxBytes: Long): HttpResponse =
        suspendCancellableCoroutine { continuation ->
            continuation.invokeOnCancellation { call.cancel() }
            call.enqueue(object : Callback {
                override fun onFailure(call: Call, e: IOException) {
                    continuation.resumeWithException(classify(e))
                }

                override fun onResponse(call: Call, response: Response) {
                    // OkHttp's dispatcher thread: reading the (bounded) body here blocks nobody else.
                    val result = runCatching { response.use { read(it, maxBytes) } }
                    result.fold(continuation::resume) { error ->
                        continuation.resumeWithException(
                            if (error is HttpException) error else classify(error as? IOException ?: IOException(error)),
                        )
                    }
                }
            })
        }

    private fun read(response: Response, maxBytes: Long): HttpResponse {
        val status = response.code.toUShort()
        val source = response.body?.source()
        val declared = response.body?.contentLength() ?: -1L
        if (declared > maxBytes) throw HttpException.TooLarge(status)
        val buffer = Buffer()
        if (source != null) {
            while (true) {
                if (source.read(buffer, 8192) == -1L) break
                if (buffer.size > maxBytes) throw HttpException.TooLarge(status)
            }
        }
        val headers = (0 until response.headers.size).map {
            HttpResponseHeader(response.headers.name(it), response.headers.value(it))
        }
        // Only a followed redirect changes the URL; report it so the core refuses the answer.
        val finalUrl = if (response.priorResponse != null) response.request.url.toString() else null
        return HttpResponse(status, headers, buffer.readByteArray(), finalUrl)
    }

    private companion object {
        /** One pool for every client that passes no OkHttpClient of its own. */
        val sharedDefault: OkHttpClient by lazy { OkHttpClient() }

        /** The exception's class names the failure; its message could hold the URL. */
        fun classify(e: IOException): HttpException = when (e) {
            is SocketTimeoutException -> HttpException.Timeout()
            is UnknownHostException, is ConnectException, is NoRouteToHostException, is SSLException ->
                HttpException.Connect(e.javaClass.simpleName)
            // OkHttp's call timeout and a cancelled call.
            is InterruptedIOException -> if (e.message == "timeout") HttpException.Timeout() else HttpException.Other("cancelled")
            else -> HttpException.Interrupted(e.javaClass.simpleName)
        }
    }
}
