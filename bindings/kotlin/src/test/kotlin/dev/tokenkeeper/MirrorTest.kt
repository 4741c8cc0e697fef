package dev.tokenkeeper

import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.milliseconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.MediaType
import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okio.BufferedSink
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNotSame
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertSame
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * The Kotlin token mirror, the state flows and the interceptor's host and body rules,
 * end to end against tokenkeeper-devserver. Expiry is driven by a [ManualClock] that
 * the core and the mirror share: no test waits for real time to pass. "At once" means: the very next read, with
 * no wait, no retry and no call that could refresh the mirror by itself.
 */
@ExtendWith(DevServerExtension::class)
class MirrorTest(private val server: DevServer) {

    @BeforeEach
    fun resetServer() {
        server.clearFaults()
        server.resetStats()
    }

    private fun config() = AuthConfig(
        tokenEndpoint = server.tokenEndpoint,
        clientId = "demo-client",
        clientSecret = "demo-secret",
        revocationEndpoint = server.revocationEndpoint,
        scopes = listOf("read"),
    )

    private fun interceptedClient(session: Session) =
        OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()

    /** Whether the resource server accepts [token] right now (a request without tokenkeeper). */
    private fun serverAccepts(token: AccessToken): Boolean =
        OkHttpClient().newCall(
            Request.Builder().url(server.resourceUrl("orders")).header("Authorization", "Bearer ${token.value}").build(),
        ).execute().use { it.code == 200 }

    @Test
    fun `the cached read is served from the mirror and matches the core`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        val token = session.accessToken()

        assertEquals(token, session.cachedAccessToken())
        assertEquals(token, session.native.cachedAccessToken(), "the mirror and the core agree")
        assertSame(session.cachedAccessToken(), session.cachedAccessToken(), "a mirror read allocates nothing new")
        assertEquals(token.expiresAtEpochSeconds, token.expiresAt.time / 1000)
    }

    @Test
    fun `after invalidate the cached read is empty at once, then shows the new token`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        val old = session.accessToken()

        session.invalidate()
        assertNull(session.cachedAccessToken(), "no stale token after invalidate()")

        val new = session.accessToken()
        assertNotEquals(old.value, new.value)
        assertEquals(new, session.cachedAccessToken())
        assertEquals(2, server.stats().tokenRequests)
    }

    @Test
    fun `after logout the cached read is empty and the state is LoggedOut`() = runBlocking {
        val client = AuthClient(config())
        val session = client.login("alice", "alice-password")
        session.accessToken()

        session.logout()

        assertNull(session.cachedAccessToken())
        assertEquals(SessionState.LoggedOut, session.state.value)
        assertNull(client.session("alice"))
    }

    @Test
    fun `a revocation recovered through the interceptor shows the new token at once`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = interceptedClient(session)
        val old = runBlocking { session.accessToken() }
        server.revokeSubject("demo-client")

        http.newCall(Request.Builder().url(server.resourceUrl("orders")).build()).execute().use {
            assertEquals(200, it.code)
        }

        val mirrored = session.cachedAccessToken()
        assertNotNull(mirrored)
        assertNotEquals(old.value, mirrored!!.value, "the mirror holds the recovered token")
        assertTrue(serverAccepts(mirrored), "and the server accepts it")
        assertFalse(serverAccepts(old))
    }

    @Test
    fun `the state flow stays SignedIn through a revocation and its silent recovery`() {
        val session = runBlocking { AuthClient(config()).login("alice", "alice-password") }
        val old = runBlocking { session.accessToken() }
        // Unconfined: the collector runs inside each state change, so it records every
        // value the flow takes, not only the latest one a dispatched collector would see.
        val seen = CopyOnWriteArrayList<SessionState>()
        val collector = kotlinx.coroutines.GlobalScope.launch(Dispatchers.Unconfined) {
            session.state.collect { seen.add(it) }
        }
        server.revokeSubject("alice")
        interceptedClient(session).newCall(Request.Builder().url(server.resourceUrl("orders")).build()).execute().use {
            assertEquals(200, it.code)
        }
        val recovered = session.cachedAccessToken()!!
        assertNotEquals(old.value, recovered.value)
        collector.cancel()

        assertTrue(seen.size >= 2, "the recovery changed the state: $seen")
        assertTrue(seen.all { it is SessionState.SignedIn && it.expiresAt != null }, "every emission: $seen")
        assertEquals(recovered.expiresAtEpochSeconds, (seen.last() as SessionState.SignedIn).expiresAtEpochSeconds)
    }

    @Test
    fun `steady keeps the last expiry only between two tokens`() {
        val at = SessionState.SignedIn(1_000L, java.util.Date(1_000_000L))
        val between = SessionState.SignedIn(null, null)
        assertSame(at, steady(at, between))
        assertEquals(between, steady(between, between), "no token yet: nothing to keep")
        assertEquals(SessionState.ReauthenticationRequired, steady(at, SessionState.ReauthenticationRequired))
        assertEquals(SessionState.LoggedOut, steady(at, SessionState.LoggedOut))
    }

    /** Moves [clock] to one minute before [token] expires: inside the refresh margin, still valid. */
    private fun intoRefreshMargin(clock: ManualClock, token: AccessToken) =
        clock.advance((token.expiresAt.time - clock.nowEpochMillis() - 60_000).milliseconds)

    @Test
    fun `after a background refresh the cached read shows the new token at once`() = runBlocking {
        val clock = ManualClock.startingNow()
        val session = AuthClient(config(), clock = clock).clientCredentialsSession()
        val first = session.accessToken()
        assertEquals(first, session.cachedAccessToken())

        intoRefreshMargin(clock, first)
        assertNull(session.cachedAccessToken(), "due for refresh: neither the mirror nor the core serves it as fresh")
        val served = session.accessToken()
        assertEquals(first.value, served.value, "the still-valid token is served; the refresh runs behind the caller")
        session.waitForRefresh()

        val mirrored = session.cachedAccessToken()
        assertNotNull(mirrored, "the refreshed token is fresh in the mirror")
        assertNotEquals(first.value, mirrored!!.value)
        assertEquals(session.native.cachedAccessToken(), mirrored, "the mirror and the core agree")
        assertTrue(mirrored.expiresAt.after(first.expiresAt))
        assertEquals(SessionState.SignedIn(mirrored.expiresAtEpochSeconds, mirrored.expiresAt), session.state.value)
        assertEquals(2, server.stats().tokenRequests)
        assertTrue(serverAccepts(mirrored))
    }

    @Test
    fun `100 coroutines inside the refresh margin share one background refresh and then agree`() = runBlocking {
        val clock = ManualClock.startingNow()
        val session = AuthClient(config(), clock = clock).clientCredentialsSession()
        val first = session.accessToken()
        intoRefreshMargin(clock, first)
        server.resetStats()

        val served = (1..100).map { async(Dispatchers.Default) { session.accessToken() } }.awaitAll()
        session.waitForRefresh()

        assertTrue(served.all { it.expiresAt.time >= first.expiresAt.time }, "nobody got an older token")
        assertEquals(1, server.stats().tokenRequests, "one background refresh for 100 callers")
        val fresh = session.cachedAccessToken()
        assertNotNull(fresh)
        val after = (1..100).map { async(Dispatchers.Default) { session.cachedAccessToken() } }.awaitAll()
        assertEquals(setOf(fresh!!.value), after.map { it?.value }.toSet(), "everyone reads the refreshed token")
    }

    @Test
    fun `after a per-response rotation the cached read shows the rotated token at once`() {
        DevServer.start("--rotate-access-tokens").use { rotating ->
            val config = AuthConfig(
                tokenEndpoint = rotating.tokenEndpoint,
                clientId = "demo-client",
                clientSecret = "demo-secret",
                scopes = listOf("read"),
                tokenRotation = TokenRotation(tokenHeader = "access-token", expiryHeader = "expiry"),
            )
            val session = AuthClient(config).clientCredentialsSession()
            val http = OkHttpClient.Builder()
                .addInterceptor(TokenKeeperInterceptor(session, listOf(rotating.baseUrl)))
                .build()
            var previous = runBlocking { session.accessToken() }.value

            repeat(3) { round ->
                val rotated = http.newCall(Request.Builder().url(rotating.resourceUrl("orders")).build()).execute()
                    .use {
                        assertEquals(200, it.code)
                        it.header("access-token")
                    }
                assertNotNull(rotated, "round $round: the server rotated")
                // Had the session kept its old token, the server would have answered with
                // the chain's newest token again: the one the previous round adopted.
                // assertTrue, not assertEquals: a failure must not print token values.
                assertTrue(previous != rotated, "round $round: the request carried the previous rotated token")
                assertTrue(rotated == session.cachedAccessToken()?.value, "round $round: the mirror shows it at once")
                assertEquals(session.native.cachedAccessToken(), session.cachedAccessToken())
                previous = rotated!!
            }
            assertEquals(1, rotating.stats().tokenRequests, "rotation needs no token endpoint traffic")
            assertEquals(3, rotating.stats().resourceRequests, "no 401, no replay")
        }
    }

    @Test
    fun `a rotation header from a host that is not listed is ignored`() {
        val config = config().copy(tokenRotation = TokenRotation(tokenHeader = "access-token", expiryHeader = "expiry"))
        val session = AuthClient(config).clientCredentialsSession()
        val http = interceptedClient(session)
        val token = runBlocking { session.accessToken() }
        val expiry = (System.currentTimeMillis() / 1000 + 7_200).toString()
        Recorder(mapOf("access-token" to "planted-by-a-third-party", "expiry" to expiry)).use { other ->
            http.newCall(Request.Builder().url(other.url).build()).execute().close()
        }
        assertEquals(token, session.cachedAccessToken(), "the session kept its own token")
    }

    @Test
    fun `refresh() and accessToken(minValidity) update the mirror at once`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        val first = session.accessToken()

        val refreshed = session.refresh()
        assertNotEquals(first.value, refreshed.value)
        assertEquals(refreshed, session.cachedAccessToken())

        // The devserver's tokens live 1 h by default: an ask for 2 h of validity cannot be
        // met by any new token, so the session serves the best it has (no token request
        // per call) and the mirror agrees.
        val longer = session.accessToken(2.hours)
        assertEquals(refreshed.value, longer.value)
        assertEquals(longer, session.cachedAccessToken())
        assertEquals(2, server.stats().tokenRequests)
    }

    @Test
    fun `100 concurrent coroutines agree on one token, and so does the mirror`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        session.accessToken()
        session.invalidate()
        server.resetStats()

        val tokens = (1..100).map {
            async(Dispatchers.Default) { session.accessToken() to session.cachedAccessToken() }
        }.awaitAll()

        assertEquals(1, tokens.map { it.first.value }.toSet().size, "one token for everyone")
        assertEquals(setOf(tokens[0].first.value), tokens.mapNotNull { it.second?.value }.toSet())
        assertEquals(tokens[0].first, session.cachedAccessToken())
        assertEquals(1, server.stats().tokenRequests)
    }

    @Test
    fun `the same identity gives the same Session object`() = runBlocking {
        val client = AuthClient(config())
        val alice = client.login("alice", "alice-password")
        assertSame(alice, client.session("alice"))
        assertSame(client.clientCredentialsSession(), client.clientCredentialsSession())

        // A closed Session is replaced by a working one, not handed out again.
        val machine = client.clientCredentialsSession()
        val token = machine.accessToken()
        machine.close()
        val again = client.clientCredentialsSession()
        assertNotSame(machine, again)
        assertEquals(token, again.cachedAccessToken(), "the new object mirrors the same core session")
    }

    @Test
    fun `the StateFlow follows sign-in, invalidation, lost credentials and the client stream says who`() = runBlocking {
        val client = AuthClient(config())
        val session = client.login("bob", "bob-password")
        val states = CopyOnWriteArrayList<SessionState>()
        // Unconfined: the collector runs inside each update, so no state is conflated away
        // (it only records; it must not call the session from there).
        val collector = launch(Dispatchers.Unconfined) { session.state.collect { states.add(it) } }
        val needsUser = async(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
            client.reauthenticationRequired.first()
        }

        val token = session.accessToken()
        session.invalidate()
        // Bob changed his password elsewhere and all his tokens were revoked: neither the
        // refresh token nor the password in memory works any more.
        server.setPassword("bob", "a-new-password")
        server.revokeSubject("bob")
        val http = interceptedClient(session)
        val error = assertThrows<TokenKeeperIOException> {
            http.newCall(Request.Builder().url(server.resourceUrl("me")).build()).execute().close()
        }
        assertTrue(error.cause is AuthException.ReauthenticationRequired, error.cause.toString())

        assertEquals(SessionState.ReauthenticationRequired, session.state.value)
        assertNull(session.cachedAccessToken())
        val event = withTimeout(5_000) { needsUser.await() }
        assertTrue(event.identity.startsWith("user:bob"), event.identity)
        collector.cancel()

        val expected = listOf(
            SessionState.SignedIn(token.expiresAtEpochSeconds, token.expiresAt),
            SessionState.SignedIn(null, null),
        )
        // The sign-in state (with expiry), the invalidation (no token), then possibly the
        // new token the interceptor fetched before the 401, then the user is needed.
        assertEquals(expected, states.take(2), "$states")
        assertEquals(SessionState.ReauthenticationRequired, states.last(), "$states")
        server.setPassword("bob", "bob-password")
    }

    @Test
    fun `an observer that throws never breaks the session`() = runBlocking {
        val session = AuthClient(config()).clientCredentialsSession()
        val calls = java.util.concurrent.atomic.AtomicInteger()
        session.native.observe(object : TokenObserver {
            override fun onTokenChange(change: TokenChange) {
                calls.incrementAndGet()
                throw IllegalStateException("observer bug")
            }
        })

        val token = session.accessToken()
        session.invalidate()
        assertNotEquals(token.value, session.accessToken().value)
        assertTrue(calls.get() >= 3, "initial state, then two changes: ${calls.get()}")
        assertEquals(session.native.cachedAccessToken(), session.cachedAccessToken())
    }

    /** A plain HTTP server on loopback that records the Authorization header it receives. */
    private class Recorder(private val responseHeaders: Map<String, String> = emptyMap()) : AutoCloseable {
        val authorizations = CopyOnWriteArrayList<String?>()
        private val http = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0).apply {
            createContext("/") { exchange ->
                authorizations.add(exchange.requestHeaders.getFirst("Authorization"))
                responseHeaders.forEach { (name, value) -> exchange.responseHeaders.add(name, value) }
                exchange.sendResponseHeaders(204, -1)
                exchange.close()
            }
            start()
        }
        val url get() = "http://127.0.0.1:${http.address.port}/anything"
        override fun close() = http.stop(0)
    }

    @Test
    fun `the interceptor never sends the token to a host it was not given`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = interceptedClient(session)
        Recorder().use { other ->
            http.newCall(Request.Builder().url(other.url).build()).execute().close()
            http.newCall(Request.Builder().url(other.url).header("Authorization", "Basic app-own").build())
                .execute().close()

            assertEquals(listOf(null, "Basic app-own"), other.authorizations.toList(), "untouched")
        }
        assertEquals(0, server.stats().tokenRequests, "not even a token was fetched")

        // The same server under another name is another origin.
        val localhost = server.resourceUrl("orders").replace("127.0.0.1", "localhost")
        http.newCall(Request.Builder().url(localhost).build()).execute().use { assertEquals(401, it.code) }
    }

    @Test
    fun `host entries match https only, origins match scheme host and port`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val interceptor = TokenKeeperInterceptor(session, listOf("API.example.com", "http://10.0.2.2:8080"))

        assertTrue(interceptor.isAllowed("https://api.example.com/x".toHttpUrl()))
        assertTrue(interceptor.isAllowed("https://api.example.com:8443/x".toHttpUrl()))
        assertFalse(interceptor.isAllowed("http://api.example.com/x".toHttpUrl()))
        assertFalse(interceptor.isAllowed("https://evil.api.example.com/x".toHttpUrl()))
        assertFalse(interceptor.isAllowed("https://api.example.com.evil.test/x".toHttpUrl()))
        assertTrue(interceptor.isAllowed("http://10.0.2.2:8080/x".toHttpUrl()))
        assertFalse(interceptor.isAllowed("http://10.0.2.2:8081/x".toHttpUrl()))
        assertFalse(interceptor.isAllowed("https://10.0.2.2:8080/x".toHttpUrl()))
        assertThrows<IllegalArgumentException> { TokenKeeperInterceptor(session, emptyList()) }
    }

    /** A body that can be written once, like a stream being uploaded. */
    private class OneShotBody(private val bytes: ByteArray) : RequestBody() {
        val writes = java.util.concurrent.atomic.AtomicInteger()
        override fun contentType(): MediaType = "application/json".toMediaType()
        override fun isOneShot() = true
        override fun writeTo(sink: BufferedSink) {
            writes.incrementAndGet()
            sink.write(bytes)
        }
    }

    @Test
    fun `a one-shot body is never replayed, even on an idempotent method`() {
        val session = AuthClient(config()).clientCredentialsSession()
        val http = interceptedClient(session)
        val old = runBlocking { session.accessToken() }
        server.revokeSubject("demo-client")
        server.resetStats()

        val body = OneShotBody("{}".toByteArray())
        val put = Request.Builder().url(server.resourceUrl("orders")).put(body)
            .tag(TokenKeeperInterceptor.Replayable::class.java, TokenKeeperInterceptor.Replayable)
            .build()
        http.newCall(put).execute().use { assertEquals(401, it.code) }

        assertEquals(1, body.writes.get(), "written once")
        assertEquals(1, server.stats().resourceRequests, "not replayed")
        assertNotEquals(old.value, session.cachedAccessToken()?.value, "but the token was renewed")
    }
}
