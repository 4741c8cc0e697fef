package dev.tokenkeeper

import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.runBlocking
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.Request
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
 * OpenID Connect through the bindings against the development server: the validated ID
 * token's claims after a PKCE sign-in and after a restart (from the store, no request),
 * UserInfo, the end-session URL and its redirect, the sign-in options on the URL, and a
 * refused ID token as the typed exception.
 */
@ExtendWith(DevServerExtension::class)
class OidcTest(private val server: DevServer) {

    private val redirectUri = "dev.tokenkeeper.demo:/oauth2redirect"

    private val browser = testBrowser

    @BeforeEach
    fun resetServer() {
        server.clearFaults()
        server.resetStats()
    }

    private fun config(oidc: OidcEndpoints? = endpoints()) = AuthConfig(
        tokenEndpoint = server.tokenEndpoint,
        clientId = "oidc-app",
        revocationEndpoint = server.revocationEndpoint,
        authorizationEndpoint = "${server.baseUrl}/oauth2/authorize",
        issuer = server.baseUrl,
        scopes = listOf("openid", "profile", "email"),
        oidc = oidc,
    )

    private fun endpoints() = OidcEndpoints(
        jwksUri = "${server.baseUrl}/oauth2/jwks",
        userinfoEndpoint = "${server.baseUrl}/api/userinfo",
        endSessionEndpoint = "${server.baseUrl}/oauth2/logout",
    )

    private suspend fun signIn(client: AuthClient): Session {
        val pending = client.authorizationRequest(account = "alice", redirectUri = redirectUri)
        assertNotNull(pending.nonce(), "openid implies a nonce")
        return client.completeAuthorization(pending, browserLogin(pending.url(), "alice", "alice-password"))
    }

    @Test
    fun `a PKCE sign-in has the validated ID token's claims`() = runBlocking<Unit> {
        val session = signIn(AuthClient(config()))
        val claims = session.idTokenClaims()!!
        assertEquals("alice", claims.subject)
        assertEquals(server.baseUrl, claims.issuer)
        assertEquals("alice@example.test", claims.email)
        assertEquals(true, claims.emailVerified)
        assertEquals("Alice Example", claims.displayName)
        assertTrue(claims.json.contains("\"nonce\""), claims.json)
        assertNotNull(claims.authTime)
    }

    @Test
    fun `after a restart the claims come from the store without a request`() = runBlocking<Unit> {
        val store = MapStore()
        val first = signIn(AuthClient(config(), store = store))
        val claims = first.idTokenClaims()!!
        assertTrue(store.tokens.values.single().contains("\"claims\""), "the record holds the claims")

        server.resetStats()
        val restored = AuthClient(config(), store = store).restore("alice")
        assertEquals(claims, restored.idTokenClaims())
        val stats = server.stats()
        assertEquals(0L, stats.tokenRequests, "$stats")
        assertEquals(0L, stats.resourceRequests, "$stats")

        restored.logout()
        assertNull(restored.idTokenClaims(), "logout forgets them")
        assertTrue(store.tokens.isEmpty())
    }

    @Test
    fun `userinfo answers for the signed-in user`() = runBlocking<Unit> {
        val session = signIn(AuthClient(config()))
        val info = session.userinfo()
        assertEquals("alice", info.subject)
        assertEquals("alice@example.test", info.email)
        assertEquals(1L, server.stats().resourceRequests)
    }

    @Test
    fun `the end-session URL carries the ID token and its redirect is checked`() = runBlocking<Unit> {
        val session = signIn(AuthClient(config()))
        val end = session.endSessionRequest(postLogoutRedirectUri = redirectUri)
        val url = end.url().toHttpUrl()
        assertEquals("${server.baseUrl}/oauth2/logout", url.newBuilder().query(null).build().toString())
        assertEquals(3, url.queryParameter("id_token_hint")!!.split('.').size)
        assertEquals(redirectUri, url.queryParameter("post_logout_redirect_uri"))
        assertEquals(end.state(), url.queryParameter("state"))
        assertFalse(end.toString().contains("id_token_hint="), "the description hides the ID token: $end")
        session.logout()

        // The browser: the provider ends its session and sends it back with our state.
        val back = browser.newCall(Request.Builder().url(end.url()).build()).execute().use {
            assertEquals(303, it.code)
            it.header("Location")!!
        }
        end.complete(back)
        assertThrows<AuthException.StateMismatch> { end.complete("$redirectUri?state=someone-elses") }
    }

    @Test
    fun `sign-in options go on the authorization URL`() {
        val pending = AuthClient(config()).authorizationRequest(
            account = "alice",
            redirectUri = redirectUri,
            options = SignInOptions(maxAge = 60.seconds, prompt = "login", loginHint = "alice", acrValues = "urn:mfa"),
        )
        val url = pending.url().toHttpUrl()
        assertEquals("60", url.queryParameter("max_age"))
        assertEquals("login", url.queryParameter("prompt"))
        assertEquals("alice", url.queryParameter("login_hint"))
        assertEquals("urn:mfa", url.queryParameter("acr_values"))
    }

    @Test
    fun `a step-up challenge is the typed exception, its values sign in again more strongly`() = runBlocking<Unit> {
        val client = AuthClient(config())
        val session = signIn(client)
        val token = session.accessToken()
        val challenge = """Bearer error="insufficient_user_authentication", acr_values="urn:mfa", max_age="300""""
        val error = assertThrows<AuthException.StepUpRequired> {
            runBlocking { session.handleUnauthorized(token, listOf(challenge)) }
        }
        assertTrue(error.message!!.contains("urn:mfa"), error.message)
        assertEquals(token, session.accessToken(), "the token is kept")
        val stepUp = stepUpChallenge(listOf(challenge))!!
        assertEquals("urn:mfa", stepUp.acrValues)
        assertEquals(300.seconds, stepUp.maxAge)
        val stronger = client.authorizationRequest(account = "alice", redirectUri = redirectUri, options = stepUp.signInOptions())
        val url = stronger.url().toHttpUrl()
        assertEquals("urn:mfa", url.queryParameter("acr_values"))
        assertEquals("300", url.queryParameter("max_age"))
        val again = client.completeAuthorization(stronger, browserLogin(stronger.url(), "alice", "alice-password"))
        assertNotEquals(token, again.accessToken(), "the stronger sign-in's token replaces the session's")
        assertNull(stepUpChallenge(listOf("""Bearer error="invalid_token"""")))
    }

    @Test
    fun `a refused ID token is the typed exception and signs nobody in`() = runBlocking<Unit> {
        val store = MapStore()
        // A key set without the server's key: the signature cannot be verified.
        val empty = """{"kind":"status","status":200,"body":{"keys":[]}}"""
        server.fault("jwks", empty)
        server.fault("jwks", empty)
        val client = AuthClient(config(), store = store)
        val error = assertThrows<AuthException.InvalidJwt> { runBlocking { signIn(client) } }
        assertTrue(error.message!!.contains("key"), error.message)
        assertNull(client.session("alice"))
        assertTrue(store.tokens.isEmpty(), "nothing stored")

        // Without any key set configured the ID token fails closed too.
        val unverifiable = AuthClient(config(oidc = null))
        val closed = assertThrows<AuthException.InvalidJwt> { runBlocking { signIn(unverifiable) } }
        assertTrue(closed.message!!.contains("key set"), closed.message)
    }
}
