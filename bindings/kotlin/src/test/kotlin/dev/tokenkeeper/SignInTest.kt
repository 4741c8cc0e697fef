package dev.tokenkeeper

import java.util.Date
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.FormBody
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.Request
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertSame
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * User sign-in through the hand-written [AuthClient] against the development server: the
 * PKCE browser flow (OkHttp plays the browser, submitting the server's test login), the
 * device grant and token import. Each returns the wrapped [Session], registered with the
 * client and with its token mirror and state flow running.
 */
@ExtendWith(DevServerExtension::class)
class SignInTest(private val server: DevServer) {

    private val redirectUri = "dev.tokenkeeper.demo:/oauth2redirect"

    private val browser = testBrowser

    @BeforeEach
    fun resetServer() {
        server.clearFaults()
        server.resetStats()
    }

    private fun nativeConfig() = AuthConfig(
        tokenEndpoint = server.tokenEndpoint,
        clientId = "native-app",
        revocationEndpoint = server.revocationEndpoint,
        authorizationEndpoint = "${server.baseUrl}/oauth2/authorize",
        deviceAuthorizationEndpoint = "${server.baseUrl}/oauth2/device_authorization",
        issuer = server.baseUrl,
        requireIss = true,
    )

    @Test
    fun `PKCE round trip signs the user in`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri, scopes = listOf("read"))
        val url = pending.url().toHttpUrl()
        assertEquals("S256", url.queryParameter("code_challenge_method"))
        assertEquals(redirectUri, pending.redirectUri())

        val redirect = browserLogin(pending.url(), "alice", "alice-password")
        val session = client.completeAuthorization(pending, redirect)

        assertEquals("alice", session.account())
        // Its own identity: `session("alice")` looks up the config's scopes, not these.
        assertEquals("user:alice scope=\"read\"", session.identity())
        assertNull(client.session("alice"))
        val token = session.accessToken()
        assertEquals(listOf("read"), token.scopes)
        assertEquals(token, session.cachedAccessToken(), "served from the mirror")
        assertEquals(token, session.native.cachedAccessToken(), "the mirror and the core agree")
        assertTrue(session.state.value is SessionState.SignedIn, "${session.state.value}")
        assertEquals(1L, server.stats().tokenRequests("authorization_code"))
    }

    @Test
    fun `a PKCE session whose tokens are all revoked needs the user, on its state flow and the client stream`() =
        runBlocking<Unit> {
            val client = AuthClient(nativeConfig())
            val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri)
            val session = client.completeAuthorization(pending, browserLogin(pending.url(), "alice", "alice-password"))
            assertSame(session, client.session("alice"), "registered like a login session")
            val needsUser = async(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                client.reauthenticationRequired.first()
            }
            val token = session.accessToken()
            server.revokeSubject("alice")
            server.resetStats()

            // No credentials to fall back on: one refresh attempt, rejected, then the user.
            assertThrows<AuthException.ReauthenticationRequired> {
                runBlocking { session.handleUnauthorized(token, listOf("Bearer error=\"invalid_token\"")) }
            }

            assertEquals(SessionState.ReauthenticationRequired, session.state.value)
            assertNull(session.cachedAccessToken())
            assertEquals(1L, server.stats().tokenRequests("refresh_token"))
            assertEquals(0L, server.stats().tokenRequests("password"))
            val event = withTimeout(5_000) { needsUser.await() }
            assertTrue(event.identity.startsWith("user:alice"), event.identity)
        }

    @Test
    fun `a redirect with a foreign state is rejected and nothing is exchanged`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri)
        val redirect = browserLogin(pending.url(), "alice", "alice-password")
        // A private-use scheme is not an http URL: edit the query as text.
        val forged = redirect.replace(Regex("state=[^&]*"), "state=forged")
        assertTrue(forged != redirect)

        assertThrows<AuthException.StateMismatch> { runBlocking { client.completeAuthorization(pending, forged) } }
        assertEquals(0L, server.stats().tokenRequests)
    }

    @Test
    fun `a replayed code is InvalidGrant`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri)
        val redirect = browserLogin(pending.url(), "alice", "alice-password")
        client.completeAuthorization(pending, redirect)

        assertThrows<AuthException.InvalidGrant> { runBlocking { client.completeAuthorization(pending, redirect) } }
    }

    @Test
    fun `device grant succeeds once the user approves on the verification page`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val device = client.startDeviceAuthorization(account = "living-room-tv")
        assertTrue(device.verificationUri().endsWith("/device"))
        assertEquals(5.seconds, device.interval(), "a kotlin.time.Duration")
        assertEquals(device.expiresAtEpochSeconds(), device.expiresAt().time / 1000)
        assertTrue(device.expiresAt().after(Date()), "expires in the future: ${device.expiresAt()}")
        val approve = FormBody.Builder()
            .add("user_code", device.userCode())
            .add("username", "bob")
            .add("password", "bob-password")
            .build()
        browser.newCall(Request.Builder().url(device.verificationUri()).post(approve).build()).execute().use {
            assertEquals(200, it.code)
        }

        // One real wait of the server's interval (5 s), then the tokens.
        val session = client.completeDeviceAuthorization(device)

        assertEquals("living-room-tv", session.account())
        assertSame(session, client.session("living-room-tv"))
        val token = session.accessToken()
        assertTrue(token.value.isNotEmpty())
        assertEquals(token, session.cachedAccessToken(), "served from the mirror")
        assertEquals(1L, server.stats().tokenRequests("urn:ietf:params:oauth:grant-type:device_code"))
    }

    @Test
    fun `device polling can be cancelled`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val device = client.startDeviceAuthorization(account = "living-room-tv")
        val polling = async(Dispatchers.Default) { runCatching { client.completeDeviceAuthorization(device) } }
        delay(200)
        device.cancel()

        val error = polling.await().exceptionOrNull()
        assertTrue(error is AuthException.Cancelled, "got $error")
    }

    @Test
    fun `imported tokens are served without a token request`() = runBlocking<Unit> {
        val tokenResponse = browser.newCall(
            Request.Builder()
                .url(server.tokenEndpoint)
                .header("Authorization", okhttp3.Credentials.basic("demo-client", "demo-secret"))
                .post(
                    FormBody.Builder()
                        .add("grant_type", "password")
                        .add("username", "bob")
                        .add("password", "bob-password")
                        .build(),
                )
                .build(),
        ).execute().use { it.body!!.string() }
        fun field(name: String) = Regex("\"$name\"\\s*:\\s*\"([^\"]+)\"").find(tokenResponse)!!.groupValues[1]
        server.resetStats()
        val client = AuthClient(
            AuthConfig(tokenEndpoint = server.tokenEndpoint, clientId = "demo-client", clientSecret = "demo-secret"),
        )

        val tokens = ImportedTokens(
            accessToken = field("access_token"),
            refreshToken = field("refresh_token"),
            expiresAt = Date(System.currentTimeMillis() + 600_000),
        )
        assertFalse(tokens.toString().contains(field("refresh_token")), "toString redacts: $tokens")
        assertFalse(tokens.toString().contains(field("access_token")), "toString redacts: $tokens")

        val session = client.importTokens(account = "bob", tokens = tokens)

        assertSame(session, client.session("bob"))
        assertEquals(field("access_token"), session.cachedAccessToken()?.value, "the mirror holds it at once")
        assertEquals(field("access_token"), session.accessToken().value)
        // The Date went in as the expiry (within the second the core's clock read took).
        val drift = session.accessToken().expiresAt.time - tokens.expiresAt!!.time
        assertTrue(drift in -1_000..1_000, "expiry moved by $drift ms")
        assertEquals(0L, server.stats().tokenRequests)
        session.invalidate()
        assertNull(session.cachedAccessToken(), "invalidate() empties the mirror")
        val refreshed = session.accessToken()
        assertTrue(refreshed.value != field("access_token"), "the imported refresh token works")
        assertEquals(refreshed, session.cachedAccessToken())
        assertEquals(1L, server.stats().tokenRequests("refresh_token"))
    }
}
