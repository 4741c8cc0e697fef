package dev.tokenkeeper

import kotlinx.coroutines.runBlocking
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

/**
 * DPoP (RFC 9449) from Kotlin against the development server's verifier, started with
 * `--dpop-required --dpop-nonces`: every token request and every resource request must
 * carry a valid proof with the server's current nonce, and tokens are bound to the key.
 * The key is the core's software key, kept in the session record (so in the app's
 * [TokenStore]); [PlatformKeyTest] covers keys in a [PlatformDpopKeys].
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DpopTest {

    private val server = DevServer.start("--dpop-required", "--dpop-nonces")

    @AfterAll
    fun stopServer() = server.stop()

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
        dpop = DpopMode.REQUIRED,
    )

    private fun http(session: Session) =
        OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()

    private fun OkHttpClient.status(path: String): Int =
        newCall(Request.Builder().url(server.resourceUrl(path)).build()).execute().use { it.code }

    @Test
    fun `sign-in, refresh and resource calls through the interceptor use bound tokens`() {
        val session = runBlocking { AuthClient(config()).login("alice", "alice-password") }
        val http = http(session)
        assertEquals(200, http.status("me"))
        val jkt = session.native.dpopThumbprint()
        assertNotNull(jkt, "a DPoP session has a key")
        val first = runBlocking { session.accessToken() }
        val refreshed = runBlocking { session.refresh() }
        assertNotEquals(first.value, refreshed.value, "a new token")
        assertEquals(jkt, session.native.dpopThumbprint(), "the same key after the refresh")
        assertEquals(200, http.status("me?page=2"))

        val stats = server.stats()
        // Login (nonce learned with one refusal, then accepted), refresh, two resource calls.
        assertEquals(4, stats.dpopProofsAccepted, "$stats")
        assertEquals(1, stats.dpopRejections("nonce"), "$stats")
        assertEquals(2, stats.resourceRequests, "$stats")

        // The token without the key is refused as a bearer token.
        val plain = OkHttpClient()
        val stolen = Request.Builder().url(server.resourceUrl("me")).header("Authorization", "Bearer " + refreshed.value).build()
        assertEquals(401, plain.newCall(stolen).execute().use { it.code })
        assertEquals(1, server.stats().dpopRejections("bound_token_as_bearer"))
    }

    @Test
    fun `a nonce rotation costs the interceptor one resend and no token request`() {
        val session = runBlocking { AuthClient(config()).login("alice", "alice-password") }
        val http = http(session)
        assertEquals(200, http.status("me"))
        server.resetStats()
        for (round in 1..3) {
            server.rotateDpopNonce()
            assertEquals(200, http.status("me"), "round $round")
        }
        val stats = server.stats()
        assertEquals(6, stats.resourceRequests, "a refusal and a resend per rotation: $stats")
        assertEquals(3, stats.dpopRejections("nonce"), "$stats")
        assertEquals(0, stats.tokenRequests, "a nonce refusal is not a revocation: $stats")
    }

    private val storedKey = Regex("\"dpop_key\"\\s*:\\s*\"([^\"]+)\"")

    @Test
    fun `a restore finds its key, and a key that is not the one the tokens are bound to needs the user without a request`() = runBlocking {
        val store = MapStore()
        AuthClient(config(), store = store).login("alice", "alice-password")
        val restored = AuthClient(config(), store = store).restore("alice")
        assertEquals(200, http(restored).status("me"))

        // Another sign-in's key put into alice's record: a mismatch the restore must see.
        val other = MapStore()
        AuthClient(config(), store = other).login("bob", "bob-password")
        val otherKey = storedKey.find(other.tokens.values.single())!!.groupValues[1]
        val (key, record) = store.tokens.entries.single()
        assertTrue(storedKey.containsMatchIn(record), "the software key is in the record")
        store.tokens[key] = storedKey.replace(record) { "\"dpop_key\":\"$otherKey\"" }
        server.resetStats()

        val error = assertThrows<AuthException.ReauthenticationRequired> {
            runBlocking { AuthClient(config(), store = store).restore("alice") }
        }
        assertTrue(error.message!!.contains("thumbprint mismatch"), error.message)
        assertEquals(0, server.stats().tokenRequests, "no request with the wrong key")
        assertEquals(null, store.tokens[key], "the unusable record is deleted")
    }
}
