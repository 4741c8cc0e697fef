package dev.tokenkeeper

import java.net.ServerSocket
import kotlinx.coroutines.runBlocking
import okhttp3.HttpUrl.Companion.toHttpUrl
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * What a Kotlin developer meets first, against the development server: a client from
 * the server's metadata, `isRetryable` on the exceptions, readable `toString()` of
 * states and errors (with no secret in them), and one name for the account.
 */
@ExtendWith(DevServerExtension::class)
class LooseEndsTest(private val server: DevServer) {

    @Test
    fun `discovery configures the client from the server's metadata`() = runBlocking<Unit> {
        val client = AuthClient.discover(
            server.baseUrl, "native-app",
            settings = AuthConfig(tokenEndpoint = "", clientId = "ignored", scopes = listOf("read")),
        )
        val pending = client.authorizationRequest(account = "alice", redirectUri = "dev.tokenkeeper.demo:/oauth2redirect")
        val url = pending.url().toHttpUrl()
        assertEquals("${server.baseUrl}/oauth2/authorize", url.newBuilder().query(null).build().toString())
        assertEquals("native-app", url.queryParameter("client_id"))
        assertEquals("read", url.queryParameter("scope"), "the settings' scopes apply")

        // The metadata names 127.0.0.1: asking for the same server as localhost is a mix-up.
        val elsewhere = server.baseUrl.replace("127.0.0.1", "localhost")
        assertThrows<AuthException.IssuerMismatch> { runBlocking { AuthClient.discover(elsewhere, "native-app") } }
    }

    @Test
    fun `isRetryable says which exceptions mean try again later`() = runBlocking<Unit> {
        val closedPort = ServerSocket(0).use { it.localPort }
        val offline = AuthClient(
            AuthConfig(tokenEndpoint = "http://127.0.0.1:$closedPort/token", clientId = "demo-client", clientSecret = "demo-secret"),
        )
        val unreachable = assertThrows<AuthException.TemporarilyUnavailable> {
            runBlocking { offline.clientCredentialsSession().accessToken() }
        }
        assertTrue(unreachable.isRetryable, unreachable.toString())

        val client = AuthClient(AuthConfig(tokenEndpoint = server.tokenEndpoint, clientId = "demo-client", clientSecret = "demo-secret"))
        val wrongPassword = assertThrows<AuthException.InvalidGrant> {
            runBlocking { client.login("alice", "not-alices-password") }
        }
        assertFalse(wrongPassword.isRetryable)
        assertTrue(wrongPassword.toString().contains("InvalidGrant"), wrongPassword.toString())
        assertFalse(wrongPassword.toString().contains("not-alices-password"), "no password in: $wrongPassword")
        assertFalse(wrongPassword.toString().contains("demo-secret"), "no secret in: $wrongPassword")
    }

    @Test
    fun `states print readably and hold no token`() = runBlocking<Unit> {
        assertEquals("LoggedOut", SessionState.LoggedOut.toString())
        assertEquals("ReauthenticationRequired", SessionState.ReauthenticationRequired.toString())
        assertEquals("SignedIn(no token cached)", SessionState.SignedIn(null, null).toString())

        val client = AuthClient(AuthConfig(tokenEndpoint = server.tokenEndpoint, clientId = "demo-client", clientSecret = "demo-secret"))
        val session = client.login("alice", "alice-password")
        val token = session.accessToken()
        val printed = session.state.value.toString()
        assertEquals("SignedIn(expiresAtEpochSeconds=${token.expiresAtEpochSeconds})", printed)
        assertFalse(printed.contains(token.value))
        assertEquals("alice", session.account())
        @Suppress("DEPRECATION")
        assertEquals(session.account(), session.username(), "the deprecated name still answers")
        assertEquals(session, client.session(account = "alice"))
    }
}
