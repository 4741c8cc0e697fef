package dev.tokenkeeper

import java.net.InetAddress
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.runBlocking
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import okhttp3.mockwebserver.MockResponse
import okhttp3.mockwebserver.MockWebServer
import okhttp3.tls.HandshakeCertificates
import okhttp3.tls.HeldCertificate
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * OkHttp as the SDK's HTTP stack, against real loopback servers: the app's client (its
 * interceptors, its trust store) carries the token request, the secret body is wiped
 * after the call, and a redirect is refused.
 */
@ExtendWith(DevServerExtension::class)
class TransportTest(private val server: DevServer) {

    @BeforeEach
    fun resetServer() {
        server.clearFaults()
        server.resetStats()
    }

    private val tokenJson = """{"access_token":"tls-token","token_type":"Bearer","expires_in":3600}"""

    private fun config(tokenEndpoint: String) = AuthConfig(
        tokenEndpoint = tokenEndpoint,
        clientId = "demo-client",
        clientSecret = "demo-secret",
        scopes = listOf("read"),
    )

    @Test
    fun `the token request goes through the app's OkHttpClient and its interceptors`() = runBlocking {
        val seen = AtomicInteger()
        val http = OkHttpClient.Builder()
            .addInterceptor(Interceptor { chain -> seen.incrementAndGet(); chain.proceed(chain.request()) })
            .build()
        AuthClient(config(server.tokenEndpoint), transport = OkHttpTransport(http)).use { client ->
            client.clientCredentialsSession().accessToken()
        }
        assertEquals(1, seen.get(), "the app's interceptor saw the token request")
        assertEquals(1L, server.stats().tokenRequests)
    }

    /** Remembers the body arrays it handed to OkHttp, to look at them after the call. */
    private class Watching(private val inner: HttpTransport) : HttpTransport {
        val bodies = mutableListOf<ByteArray>()
        override suspend fun send(request: HttpRequest): HttpResponse {
            bodies += request.body
            return inner.send(request)
        }
    }

    @Test
    fun `the request body holding the password is wiped after the call`() = runBlocking {
        val watching = Watching(OkHttpTransport())
        AuthClient(config(server.tokenEndpoint), transport = watching).use { client ->
            client.login("alice", "alice-password")
        }
        val body = watching.bodies.single()
        assertTrue(body.isNotEmpty())
        assertTrue(body.all { it == 0.toByte() }, "zeroed after the call")
    }

    @Test
    fun `a redirect from the token endpoint is refused, not followed`() {
        MockWebServer().use { elsewhere ->
            elsewhere.start()
            MockWebServer().use { redirecting ->
                redirecting.enqueue(
                    MockResponse().setResponseCode(307).setHeader("Location", elsewhere.url("/token").toString()),
                )
                redirecting.start()
                AuthClient(config(redirecting.url("/token").toString())).use { client ->
                    val error = assertThrows<AuthException.InvalidResponse> {
                        runBlocking { client.clientCredentialsSession().accessToken() }
                    }
                    assertTrue(error.message!!.contains("redirect"), error.message)
                }
                assertEquals(0, elsewhere.requestCount, "the secret never reached the other host")
            }
        }
    }

    /**
     * A loopback TLS server whose CA only this JVM's trust configuration knows: accepted
     * through OkHttp built with that trust, refused by the Rust stack (reqwest with its
     * compiled-in roots) when no `rootCertificates` are configured.
     */
    @Test
    fun `the platform trust store decides through OkHttp, not the Rust stack`() {
        val localhost = InetAddress.getByName("127.0.0.1").canonicalHostName
        val ca = HeldCertificate.Builder().certificateAuthority(0).commonName("tokenkeeper test CA").build()
        val leaf = HeldCertificate.Builder()
            .signedBy(ca)
            .addSubjectAlternativeName("127.0.0.1")
            .addSubjectAlternativeName(localhost)
            .build()
        val serverCerts = HandshakeCertificates.Builder().heldCertificate(leaf, ca.certificate).build()
        val trusting = HandshakeCertificates.Builder().addTrustedCertificate(ca.certificate).build()
        MockWebServer().use { tls ->
            tls.useHttps(serverCerts.sslSocketFactory(), false)
            repeat(2) {
                tls.enqueue(
                    MockResponse().setHeader("Content-Type", "application/json").setBody(tokenJson),
                )
            }
            tls.start(InetAddress.getByName("127.0.0.1"), 0)
            val endpoint = "https://127.0.0.1:${tls.port}/token"

            val http = OkHttpClient.Builder()
                .sslSocketFactory(trusting.sslSocketFactory(), trusting.trustManager)
                .build()
            AuthClient(config(endpoint), transport = OkHttpTransport(http)).use { client ->
                val token = runBlocking { client.clientCredentialsSession().accessToken() }
                assertEquals("tls-token", token.value)
            }
            assertEquals(1, tls.requestCount)

            // The Rust stack: no rootCertificates, so the private CA is unknown to it.
            AuthClient(config(endpoint).copy(retryPolicy = RetryPolicy(1, 10.milliseconds, 10.milliseconds, 1.seconds)), transport = null).use { client ->
                val error = assertThrows<AuthException.TemporarilyUnavailable> {
                    runBlocking { client.clientCredentialsSession().accessToken() }
                }
                assertTrue(error.message!!.contains("could not connect"), error.message)
            }
        }
    }
}
