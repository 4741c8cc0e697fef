package dev.tokenkeeper

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * The Kotlin bindings end to end: generated code → JNA → Rust core → HTTP →
 * tokenkeeper-devserver. Each test resets the server's statistics and uses its own
 * AuthClient, so the server's call counts are the assertions.
 */
@ExtendWith(DevServerExtension::class)
class TokenKeeperTest(private val server: DevServer) {

    @BeforeEach
    fun resetServer() {
        server.clearFaults()
        server.resetStats()
    }

    private fun config(
        clientId: String = "demo-client",
        clientSecret: String? = "demo-secret",
        tokenEndpoint: String = server.tokenEndpoint,
    ) = AuthConfig(
        tokenEndpoint = tokenEndpoint,
        clientId = clientId,
        clientSecret = clientSecret,
        revocationEndpoint = server.revocationEndpoint,
        scopes = listOf("read"),
    )

    @Test
    fun `client credentials session gets a token with value, expiry and scopes`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        assertNull(session.cachedAccessToken(), "nothing cached before the first request")

        val token = session.accessToken()

        assertTrue(token.value.isNotEmpty())
        assertTrue(token.expiresAtEpochSeconds > System.currentTimeMillis() / 1000)
        assertEquals(listOf("read"), token.scopes)
        assertFalse(token.toString().contains(token.value), "toString must redact the token: $token")
        assertEquals(token, session.cachedAccessToken())
        assertFalse(config().toString().contains("demo-secret"), "toString must redact the secret")
        assertEquals(1, server.stats().tokenRequests("client_credentials"))
    }

    @Test
    fun `login returns the user's session, registered once per identity`() = runBlocking {
        val client = AuthClient(config())

        val session = client.login("alice", "alice-password")

        assertEquals("alice", session.username())
        assertTrue(session.identity().startsWith("user:alice"), session.identity())
        assertTrue(session.accessToken().value.isNotEmpty())
        assertEquals(session, client.session("alice"))
        assertNull(client.session("bob"))
        assertEquals(1, server.stats().tokenRequests("password"))
    }

    @Test
    fun `100 concurrent accessToken calls share exactly one token request`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()

        val tokens = (1..100).map { async(Dispatchers.Default) { session.accessToken() } }.awaitAll()

        assertEquals(1, tokens.map { it.value }.toSet().size)
        assertEquals(1, server.stats().tokenRequests)
    }

    @Test
    fun `revoked token is recovered through the OkHttp interceptor with one token request`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()
        val orders = Request.Builder().url(server.resourceUrl("orders")).build()
        http.newCall(orders).execute().use { assertEquals(200, it.code) }

        server.revokeSubject("demo-client")
        server.resetStats()
        http.newCall(orders).execute().use { assertEquals(200, it.code, it.body?.string()) }

        val stats = server.stats()
        assertEquals(1, stats.tokenRequests, "one new token: $stats")
        assertEquals(2, stats.resourceRequests, "the 401, then the replay: $stats")
    }

    @Test
    fun `revoked user session recovers through the interceptor without the user`() {
        val session = runBlocking { AuthClient(config()).login("alice", "alice-password") }
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()
        val me = Request.Builder().url(server.resourceUrl("me")).build()
        http.newCall(me).execute().use { assertEquals(200, it.code) }

        // Revokes the refresh token too: the core tries it, then signs in again with
        // the password it holds in memory. No prompt, one sign-in.
        server.revokeSubject("alice")
        server.resetStats()
        http.newCall(me).execute().use { assertEquals(200, it.code, it.body?.string()) }

        val stats = server.stats()
        assertEquals(1, stats.tokenRequests("password"), "one re-authentication: $stats")
        assertEquals(2, stats.resourceRequests, "the 401, then the replay: $stats")
    }

    @Test
    fun `interceptor renews but does not replay a POST after a 401`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()
        val before = runBlocking { session.accessToken() }
        server.revokeSubject("demo-client")
        server.resetStats()

        val post = Request.Builder().url(server.resourceUrl("orders"))
            .post("{}".toRequestBody("application/json".toMediaType())).build()
        http.newCall(post).execute().use { assertEquals(401, it.code) }

        assertEquals(1, server.stats().resourceRequests, "not replayed")
        assertNotEquals(before.value, runBlocking { session.accessToken() }.value, "but renewed")
        assertEquals(1, server.stats().tokenRequests)
    }

    @Test
    fun `a POST tagged Replayable is replayed after a 401`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()
        runBlocking { session.accessToken() }
        server.revokeSubject("demo-client")
        server.resetStats()

        val post = Request.Builder().url(server.resourceUrl("orders"))
            .post("{}".toRequestBody("application/json".toMediaType()))
            .tag(TokenKeeperInterceptor.Replayable::class.java, TokenKeeperInterceptor.Replayable)
            .build()
        http.newCall(post).execute().use { assertEquals(200, it.code) }

        assertEquals(2, server.stats().resourceRequests)
    }

    @Test
    fun `a 403 passes through the interceptor untouched`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()

        // /api/admin… needs scope "admin"; this session asked for "read" only.
        http.newCall(Request.Builder().url(server.resourceUrl("admin/users")).build()).execute().use {
            assertEquals(403, it.code)
        }

        assertEquals(1, server.stats().tokenRequests, "a new token would not help: no renewal")
    }

    @Test
    fun `wrong client secret throws InvalidClient`() = runBlocking {
        val session = AuthClient(config(clientSecret = "wrong-secret")).clientCredentialsSession()

        val error = assertThrows<AuthException.InvalidClient> { session.accessToken() }

        assertFalse(error.message!!.contains("wrong-secret"), error.message)
        assertTrue(error is AuthException)
    }

    @Test
    fun `unreachable server throws TemporarilyUnavailable`() = runBlocking {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        val client = AuthClient(
            config(tokenEndpoint = "http://127.0.0.1:1/oauth2/token").copy(
                retryPolicy = RetryPolicy(
                    maxAttempts = 2,
                    initialBackoff = 10.milliseconds,
                    maxBackoff = 10.milliseconds,
                    deadline = 5.seconds,
                ),
                connectTimeout = 2.seconds,
            ),
        )

        assertThrows<AuthException.TemporarilyUnavailable> {
            client.clientCredentialsSession().accessToken()
        }
        Unit
    }

    @Test
    fun `invalid config throws InvalidConfig from the constructor`() {
        assertThrows<AuthException.InvalidConfig> {
            AuthClient(config(tokenEndpoint = "http://as.example.com/oauth2/token"))
        }
    }

    @Test
    fun `extra root certificates reach the core, and an unreadable one is InvalidConfig`() {
        // A real CA certificate (DER) from the JVM's own trust store.
        val trustStore = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType())
        java.io.File(System.getProperty("java.home"), "lib/security/cacerts").inputStream().use { trustStore.load(it, null) }
        val der = trustStore.aliases().asSequence().mapNotNull { trustStore.getCertificate(it) }.first().encoded
        val pem = "-----BEGIN CERTIFICATE-----\n" +
            java.util.Base64.getMimeEncoder(64, "\n".toByteArray()).encodeToString(der) +
            "\n-----END CERTIFICATE-----\n"

        AuthClient(config().copy(rootCertificates = listOf(der, pem.toByteArray()))).close()
        val error = assertThrows<AuthException.InvalidConfig> {
            AuthClient(config().copy(rootCertificates = listOf("not a certificate".toByteArray())))
        }
        assertTrue(error.message!!.contains("certificate"), error.message)
    }

    /** A TokenStore an app would back with encrypted preferences; here a map (DpopTest uses it too). */
    internal class MapStore : TokenStore {
        val tokens = ConcurrentHashMap<String, String>()
        override fun load(key: String): String? = tokens[key]
        override fun save(key: String, refreshToken: String) {
            tokens[key] = refreshToken
        }
        override fun remove(key: String) {
            tokens.remove(key)
        }
    }

    @Test
    fun `Kotlin TokenStore receives the refresh token and restores the session`() = runBlocking {
        val store = MapStore()
        AuthClient(config(), store = store).login("alice", "alice-password")

        assertEquals(1, store.tokens.size, "one refresh token saved: ${store.tokens.keys}")
        val (key, refreshToken) = store.tokens.entries.single()
        assertTrue(refreshToken.isNotEmpty())
        assertFalse(key.contains("alice-password") || key.contains("demo-secret"), key)

        // A new client (an app restart) with the same store: no password needed.
        server.resetStats()
        val restored = AuthClient(config(), store = store).restore("alice")
        assertTrue(restored.accessToken().value.isNotEmpty())
        assertEquals(0, server.stats().tokenRequests("password"))
    }

    @Test
    fun `TokenStore that throws surfaces as a typed error, not a crash`() = runBlocking {
        val failing = object : TokenStore {
            override fun load(key: String): String? = throw StoreException.Failed("keystore locked")
            override fun save(key: String, refreshToken: String) = throw IllegalStateException("disk full")
            override fun remove(key: String) = throw IllegalStateException("disk full")
        }
        val client = AuthClient(config(), store = failing)

        val error = assertThrows<AuthException.Storage> { client.restore("alice") }
        assertTrue(error.message!!.contains("keystore locked"), error.message)
        // Any other exception is caught at the boundary too: the core treats a failed
        // save as non-fatal (the refresh token is just not persisted), so login works.
        val session = client.login("alice", "alice-password")
        assertTrue(session.accessToken().value.isNotEmpty())
    }

    @Test
    fun `events reach a Kotlin listener`() = runBlocking {
        val events = CopyOnWriteArrayList<AuthEvent>()
        val listener = object : AuthEventListener {
            override fun onEvent(event: AuthEvent) {
                events.add(event)
            }
        }
        val client = AuthClient(config(), listener = listener)

        client.clientCredentialsSession().accessToken()
        assertThrows<AuthException.InvalidGrant> { client.login("bob", "not-bobs-password") }

        val issued = events.filterIsInstance<AuthEvent.TokenIssued>().single()
        assertTrue(issued.identity.startsWith("client"), issued.identity)
        assertTrue(issued.expiresAtEpochSeconds > 0)
        val failed = events.filterIsInstance<AuthEvent.LoginFailed>().single()
        assertTrue(failed.identity.startsWith("user:bob"), failed.identity)
        assertFalse(failed.reason.contains("not-bobs-password"))
    }

    @Test
    fun `a listener that throws does not break token requests`() = runBlocking {
        val calls = java.util.concurrent.atomic.AtomicInteger()
        val listener = object : AuthEventListener {
            override fun onEvent(event: AuthEvent) {
                if (calls.incrementAndGet() % 2 == 0) throw ListenerException.Failed("metrics backend down")
                throw IllegalStateException("listener bug")
            }
        }
        val client = AuthClient(config(), listener = listener)

        val session = client.login("alice", "alice-password")
        session.invalidate()
        assertTrue(session.accessToken().value.isNotEmpty())
        client.clientCredentialsSession().accessToken()

        assertTrue(calls.get() >= 2, "listener was called ${calls.get()} times")
    }

    @Test
    fun `logout revokes at the server and forgets the session`() = runBlocking {
        val store = MapStore()
        val client = AuthClient(config(), store = store)
        val session = client.login("alice", "alice-password")

        session.logout()

        assertTrue(server.stats().revocations >= 1)
        assertTrue(store.tokens.isEmpty())
        assertNull(client.session("alice"))
    }
}
