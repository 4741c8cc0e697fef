package dev.tokenkeeper

import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.runBlocking
import okhttp3.Cookie
import okhttp3.CookieJar
import okhttp3.FormBody
import okhttp3.HttpUrl
import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test

/**
 * Login and recovery through the Kotlin bindings against a real Keycloak (issue 13),
 * with Keycloak's userinfo endpoint as the protected resource. Started by
 * `scripts/keycloak.sh run-tests`; skipped (a JUnit assumption) when
 * TOKENKEEPER_KEYCLOAK_URL is not set.
 */
class KeycloakInteropTest {
    private val base: String? = System.getenv("TOKENKEEPER_KEYCLOAK_URL")?.trimEnd('/')
    private val realm = System.getenv("TOKENKEEPER_KEYCLOAK_REALM") ?: "tokenkeeper"
    private val plain = OkHttpClient()

    @BeforeEach
    fun needsKeycloak() {
        assumeTrue(base != null, "TOKENKEEPER_KEYCLOAK_URL is not set (run scripts/keycloak.sh run-tests)")
    }

    private fun oidc(endpoint: String) = "$base/realms/$realm/protocol/openid-connect/$endpoint"

    // The password client of tests/keycloak/realm.json; userinfo needs the openid scope,
    // and with it Keycloak issues ID tokens, which are refused unless they can be verified.
    private fun config() = AuthConfig(
        tokenEndpoint = oidc("token"),
        clientId = "tk-app",
        clientSecret = "tk-app-secret",
        revocationEndpoint = oidc("revoke"),
        scopes = listOf("openid"),
        issuer = "$base/realms/$realm",
        oidc = OidcEndpoints(jwksUri = oidc("certs"), userinfoEndpoint = oidc("userinfo")),
    )

    private fun userinfo() = Request.Builder().url(oidc("userinfo")).build()

    @Test
    fun `login through the bindings reaches Keycloak's userinfo`() {
        val session = runBlocking { AuthClient(config()).login("alice", "alice-password") }
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(base!!))).build()

        http.newCall(userinfo()).execute().use {
            assertEquals(200, it.code)
            assertTrue(it.body!!.string().contains("\"preferred_username\":\"alice\""))
        }
        // Keycloak's ID token, validated against the realm's key set, and its UserInfo.
        val claims = session.idTokenClaims()!!
        assertEquals("alice", claims.preferredUsername)
        assertEquals("$base/realms/$realm", claims.issuer)
        assertEquals(claims.subject, runBlocking { session.userinfo() }.subject)
    }

    /**
     * PKCE through Keycloak's real login page: OkHttp (with a cookie jar) plays the
     * browser, posts the form's `action`, and hands Keycloak's loopback redirect to
     * the SDK, which validates the ID token against the realm's key set.
     */
    @Test
    fun `PKCE through Keycloak's login page yields the validated ID token's claims`() = runBlocking<Unit> {
        val jar = object : CookieJar {
            val cookies = java.util.concurrent.ConcurrentHashMap<String, Cookie>()
            override fun saveFromResponse(url: HttpUrl, cookies: List<Cookie>) = cookies.forEach { this.cookies[it.name] = it }
            // Every request goes to the one realm; Keycloak marks its cookies Secure,
            // which a browser honours on http://127.0.0.1 too and OkHttp's matches() does not.
            override fun loadForRequest(url: HttpUrl): List<Cookie> = cookies.values.toList()
        }
        val browser = OkHttpClient.Builder().followRedirects(false).cookieJar(jar).build()
        val client = AuthClient(
            AuthConfig(
                tokenEndpoint = oidc("token"),
                clientId = "tk-native",
                scopes = listOf("openid", "profile", "email"),
                authorizationEndpoint = oidc("auth"),
                issuer = "$base/realms/$realm",
                requireIss = true,
                oidc = OidcEndpoints(jwksUri = oidc("certs"), userinfoEndpoint = oidc("userinfo")),
            ),
        )
        // Keycloak accepts a loopback redirect on any port (RFC 8252 §7.3); nothing
        // listens here, the test hands the redirect over itself.
        val pending = client.authorizationRequest(account = "alice", redirectUri = "http://127.0.0.1:9/callback")
        val page = browser.newCall(Request.Builder().url(pending.url()).build()).execute().use {
            assertEquals(200, it.code)
            it.body!!.string()
        }
        val form = page.substring(page.indexOf("kc-form-login"))
        val action = form.substringAfter("action=\"").substringBefore('"').replace("&amp;", "&")
        val login = FormBody.Builder().add("username", "alice").add("password", "alice-password").build()
        val redirect = browser.newCall(Request.Builder().url(action).post(login).build()).execute().use {
            assertEquals(302, it.code)
            it.header("Location")!!
        }
        val session = client.completeAuthorization(pending, redirect)
        val claims = session.idTokenClaims()!!
        assertEquals("alice", claims.preferredUsername)
        assertTrue(claims.json.contains(pending.nonce()!!), "the nonce of this request")
        assertEquals(claims.subject, session.userinfo().subject)
        session.logout()
    }

    @Test
    fun `after the admin ends the user's sessions the next request recovers once`() {
        val admin = Admin()
        val (username, id) = admin.createUser("kotlin-other-device", "kotlin-password")
        val events = CopyOnWriteArrayList<AuthEvent>()
        val listener = object : AuthEventListener {
            override fun onEvent(event: AuthEvent) {
                events.add(event)
            }
        }
        val session = runBlocking { AuthClient(config(), listener = listener).login(username, "kotlin-password") }
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(base!!))).build()
        http.newCall(userinfo()).execute().use { assertEquals(200, it.code) }

        admin.logoutUser(id)

        // Keycloak's 401 (invalid_token, user_session_not_found) is handled in the core:
        // the dead refresh token, then the password in memory; the GET is replayed.
        http.newCall(userinfo()).execute().use { assertEquals(200, it.code) }
        http.newCall(userinfo()).execute().use { assertEquals(200, it.code) }
        assertEquals(1, events.filterIsInstance<AuthEvent.Reauthenticated>().size, "$events")
        assertEquals(2, admin.events(id, "LOGIN"), "the login and one silent re-login")
        assertEquals(0, admin.events(id, "LOGIN_ERROR"))
    }

    @Test
    fun `DPoP-bound tokens from the bindings reach userinfo through the interceptor, and Keycloak refuses them as Bearer`() {
        // tk-dpop: a public client of realm.json with dpop.bound.access.tokens.
        val dpop = AuthConfig(
            tokenEndpoint = oidc("token"),
            clientId = "tk-dpop",
            revocationEndpoint = oidc("revoke"),
            scopes = listOf("openid"),
            dpop = DpopMode.REQUIRED,
            // openid: Keycloak's ID tokens are verified, so the key set and issuer are named.
            issuer = "$base/realms/$realm",
            oidc = OidcEndpoints(jwksUri = oidc("certs"), userinfoEndpoint = oidc("userinfo")),
        )
        val session = runBlocking { AuthClient(dpop).login("alice", "alice-password") }
        val http = OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(base!!))).build()
        http.newCall(userinfo()).execute().use { assertEquals(200, it.code) }
        val refreshed = runBlocking { session.refresh() }
        // A fresh proof per request: the same call twice is no replay.
        repeat(2) { http.newCall(userinfo()).execute().use { assertEquals(200, it.code) } }

        val asBearer = Request.Builder().url(oidc("userinfo")).header("Authorization", "Bearer " + refreshed.value).build()
        plain.newCall(asBearer).execute().use { assertEquals(401, it.code, "a DPoP-bound token sent as Bearer") }
    }

    /** Keycloak's admin REST API, as the administrator on "another device". */
    private inner class Admin {
        private val user = System.getenv("TOKENKEEPER_KEYCLOAK_ADMIN_USER") ?: "admin"
        private val password = System.getenv("TOKENKEEPER_KEYCLOAK_ADMIN_PASSWORD") ?: "admin"

        private fun token(): String {
            val form = FormBody.Builder()
                .add("grant_type", "password")
                .add("client_id", "admin-cli")
                .add("username", user)
                .add("password", password)
                .build()
            val request = Request.Builder().url("$base/realms/master/protocol/openid-connect/token").post(form).build()
            return plain.newCall(request).execute().use {
                check(it.isSuccessful) { "admin login: HTTP ${it.code}" }
                Regex("\"access_token\"\\s*:\\s*\"([^\"]+)\"").find(it.body!!.string())!!.groupValues[1]
            }
        }

        private fun call(method: String, path: String, json: String? = null): okhttp3.Response {
            val body = json?.toRequestBody("application/json".toMediaType())
            val request = Request.Builder()
                .url("$base/admin/realms/$realm$path")
                .header("Authorization", "Bearer ${token()}")
                .method(method, body ?: if (method == "POST") "".toRequestBody() else null)
                .build()
            val response = plain.newCall(request).execute()
            check(response.isSuccessful) { "admin $method $path: HTTP ${response.code}" }
            return response
        }

        /** A user of this test's own; returns (username, id). */
        fun createUser(prefix: String, userPassword: String): Pair<String, String> {
            val username = "$prefix-${ProcessHandle.current().pid()}-${counter.incrementAndGet()}"
            val json = """{"username":"$username","enabled":true,"email":"$username@example.test",
                "emailVerified":true,"firstName":"Interop","lastName":"Kotlin",
                "credentials":[{"type":"password","value":"$userPassword","temporary":false}]}"""
            val location = call("POST", "/users", json).use { it.header("Location")!! }
            return username to location.substringAfterLast('/')
        }

        fun logoutUser(id: String) = call("POST", "/users/$id/logout").close()

        /** Events of [type] recorded for the user [id]. */
        fun events(id: String, type: String): Int =
            call("GET", "/events?type=$type&max=10000").use { response ->
                Regex("\"userId\"\\s*:\\s*\"$id\"").findAll(response.body!!.string()).count()
            }
    }

    private companion object {
        val counter = AtomicInteger()
    }
}
