package dev.tokenkeeper

import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import okhttp3.FormBody
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * User sign-in through the bindings against the development server: the PKCE browser
 * flow (OkHttp plays the browser, submitting the server's test login), the device
 * grant and token import.
 */
@ExtendWith(DevServerExtension::class)
class SignInTest(private val server: DevServer) {

    private val redirectUri = "dev.tokenkeeper.demo:/oauth2redirect"

    /** A browser that does not follow redirects: we want to see where it is sent. */
    private val browser = OkHttpClient.Builder()
        .followRedirects(false)
        .callTimeout(10, TimeUnit.SECONDS)
        .build()

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

    /** Opens the authorization URL, submits the test login, returns the redirect URL. */
    private fun browserLogin(url: String, username: String, password: String): String {
        browser.newCall(Request.Builder().url(url).build()).execute().use {
            assertEquals(200, it.code)
        }
        val parsed = url.toHttpUrl()
        val form = FormBody.Builder()
        for (name in parsed.queryParameterNames) form.add(name, parsed.queryParameter(name)!!)
        form.add("username", username).add("password", password)
        val action = parsed.newBuilder().query(null).build()
        browser.newCall(Request.Builder().url(action).post(form.build()).build()).execute().use {
            assertEquals(303, it.code)
            return it.header("Location")!!
        }
    }

    @Test
    fun `PKCE round trip signs the user in`() = runBlocking<Unit> {
        val client = AuthClient(nativeConfig())
        val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri, scopes = listOf("read"))
        val url = pending.url().toHttpUrl()
        assertEquals("S256", url.queryParameter("code_challenge_method"))
        assertEquals(redirectUri, pending.redirectUri())

        val redirect = browserLogin(pending.url(), "alice", "alice-password")
        val session = client.completeAuthorization(pending, redirect)

        assertEquals("alice", session.username())
        assertEquals(listOf("read"), session.accessToken().scopes)
        assertEquals(1L, server.stats().tokenRequests("authorization_code"))
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

        assertEquals("living-room-tv", session.username())
        assertTrue(session.accessToken().value.isNotEmpty())
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
            expiresAtEpochSeconds = (System.currentTimeMillis() / 1000 + 600).toULong(),
        )
        assertFalse(tokens.toString().contains(field("refresh_token")), "toString redacts: $tokens")

        val session = client.importTokens(account = "bob", tokens = tokens)

        assertEquals(field("access_token"), session.accessToken().value)
        assertEquals(0L, server.stats().tokenRequests)
        session.invalidate()
        assertTrue(session.accessToken().value != field("access_token"), "the imported refresh token works")
        assertEquals(1L, server.stats().tokenRequests("refresh_token"))
    }
}
