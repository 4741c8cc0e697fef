package dev.tokenkeeper

import java.math.BigInteger
import java.security.MessageDigest
import java.util.Base64
import kotlinx.coroutines.runBlocking
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

/**
 * DPoP with the key on the platform (issue 20): the config names a [PlatformDpopKeys]
 * ([JcaDpopKeys], the Android Keystore's stand-in on the JVM), the core creates every
 * session key there and keeps only its alias and thumbprint in the record. The
 * development server runs with `--dpop-required --dpop-nonces` and verifies every proof,
 * each signed by Java.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PlatformKeyTest {

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

    private fun client(store: TokenStore, keys: PlatformDpopKeys) = AuthClient(config().copy(dpopKeys = keys), store = store)

    private fun http(session: Session) =
        OkHttpClient.Builder().addInterceptor(TokenKeeperInterceptor(session, listOf(server.baseUrl))).build()

    private fun OkHttpClient.status(path: String): Int =
        newCall(Request.Builder().url(server.resourceUrl(path)).build()).execute().use { it.code }

    /** The alias the core chooses: a fixed prefix, 11 base64url characters of the store key's hash, 22 random ones. */
    private val aliasShape = Regex("tokenkeeper\\.dpop\\.[A-Za-z0-9_-]{11}\\.[A-Za-z0-9_-]{22}")

    @Test
    fun `a sign-in creates one platform key, every proof is signed with it, and the record keeps only its alias`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        val session = client(store, keys).login("alice", "alice-password")
        assertEquals(200, http(session).status("me"))

        assertEquals(1, keys.count("create"), "${keys.calls}")
        val alias = keys.aliases.single()
        assertTrue(aliasShape.matches(alias), alias)
        assertEquals(thumbprint(keys, alias), session.native.dpopThumbprint(), "the tokens are bound to the platform key")

        val stats = server.stats()
        assertEquals(0, stats.dpopRejectionsOtherThan("nonce"), "$stats")
        assertEquals(1, stats.resourceRequests, "$stats")
        // The login (a nonce refusal, then accepted) and the resource call: every proof the
        // server saw, refused for its nonce or accepted, was one of the platform key's signatures.
        assertEquals(2, stats.dpopProofsAccepted, "$stats")
        assertEquals(stats.dpopProofsAccepted + stats.dpopRejections("nonce"), keys.count("sign").toLong(), "${keys.calls}")

        val record = store.tokens.values.single()
        assertTrue(record.contains(alias), "the record names the key")
        assertFalse(record.contains("\"dpop_key\""), "no software key in the record")
        assertFalse(Regex("\"d\"\\s*:").containsMatchIn(record), "no private JWK member in the record")
        val privateKey = checkNotNull(keys.privateKey(alias))
        for (secret in listOf(privateKey.encoded, coordinate(privateKey.s))) {
            for (encoded in encodings(secret)) assertFalse(record.contains(encoded), "private key bytes in the record")
        }
    }

    @Test
    fun `a key store that signs in raw r-s form instead of DER works the same`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys(rawSignatures = true)
        val session = client(store, keys).login("alice", "alice-password")
        assertEquals(200, http(session).status("me"))
        runBlocking { session.refresh() }
        assertEquals(200, http(session).status("me?again"))
        val stats = server.stats()
        assertEquals(0, stats.dpopRejectionsOtherThan("nonce"), "$stats")
        assertEquals(4, stats.dpopProofsAccepted, "login, two resource calls, refresh: $stats")
    }

    @Test
    fun `after a restart the session is restored with the same platform key and no new key is created`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        client(store, keys).login("alice", "alice-password")
        val alias = keys.aliases.single()
        server.resetStats()

        val restored = client(store, keys).restore("alice")
        assertEquals(200, http(restored).status("me"))
        assertEquals(1, keys.count("create"), "no key created by the restore: ${keys.calls}")
        assertTrue(keys.calls.contains("publicKey $alias"), "the restore checked the key: ${keys.calls}")
        assertEquals(thumbprint(keys, alias), restored.native.dpopThumbprint())
        val stats = server.stats()
        assertEquals(0, stats.dpopRejectionsOtherThan("nonce"), "$stats")
        // The restored access token is served as it is (no token request); the new client
        // learns the server's nonce from one refusal, as every new client does.
        assertEquals(0, stats.tokenRequests, "$stats")
        assertEquals(1 + stats.dpopRejections("nonce"), stats.resourceRequests, "$stats")
    }

    @Test
    fun `a platform key lost behind the SDK's back needs the user on restore, before any request`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        client(store, keys).login("alice", "alice-password")
        keys.loseKey(keys.aliases.single())
        val signed = keys.count("sign")
        server.resetStats()

        val error = assertThrows<AuthException.ReauthenticationRequired> {
            runBlocking { client(store, keys).restore("alice") }
        }
        assertTrue(error.message.orEmpty().contains("gone"), error.message)
        val stats = server.stats()
        assertEquals(0, stats.tokenRequests, "no request without the key: $stats")
        assertEquals(1, keys.count("create"), "the restore created no key: ${keys.calls}")
        assertEquals(signed, keys.count("sign"), "nothing signed: ${keys.calls}")
        assertTrue(store.tokens.isEmpty(), "the unusable record is deleted")
    }

    @Test
    fun `another key under the recorded alias needs the user on restore, before any request`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        client(store, keys).login("alice", "alice-password")
        keys.replaceKey(keys.aliases.single())
        val signed = keys.count("sign")
        server.resetStats()

        val error = assertThrows<AuthException.ReauthenticationRequired> {
            runBlocking { client(store, keys).restore("alice") }
        }
        assertTrue(error.message.orEmpty().contains("thumbprint mismatch"), error.message)
        assertEquals(0, server.stats().tokenRequests, "no request with the wrong key")
        assertEquals(signed, keys.count("sign"), "nothing signed with the wrong key: ${keys.calls}")
        assertTrue(store.tokens.isEmpty(), "the unusable record is deleted")
    }

    @Test
    fun `a logout revokes with a valid proof of the platform key, then deletes the key`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        val session = client(store, keys).login("alice", "alice-password")
        val alias = keys.aliases.single()
        server.resetStats()

        session.logout()
        assertEquals(listOf("delete $alias"), keys.calls.filter { it.startsWith("delete ") })
        assertEquals("delete $alias", keys.calls.last(), "deleted after the last proof: ${keys.calls}")
        assertTrue(keys.aliases.isEmpty())
        assertTrue(store.tokens.isEmpty(), "the record is removed")

        val stats = server.stats()
        assertTrue(stats.revocations >= 1, "$stats")
        assertEquals(stats.revocations, stats.revocationsWithProof, "every revocation carried a proof: $stats")
        assertEquals(stats.revocations.toLong(), stats.dpopProofsAccepted, "and the server accepted each: $stats")
        assertEquals(0, stats.dpopRejectionsOtherThan(), "$stats")
    }

    @Test
    fun `a browser sign-in binds its code to the platform key, and an abandoned one deletes its key`() = runBlocking {
        val store = MapStore()
        val keys = JcaDpopKeys()
        val client = AuthClient(
            config().copy(
                clientId = "native-app",
                clientSecret = null,
                authorizationEndpoint = "${server.baseUrl}/oauth2/authorize",
                dpopKeys = keys,
            ),
            store = store,
        )
        val pending = client.authorizationRequest(account = "alice", redirectUri = REDIRECT_URI)
        val alias = keys.aliases.single()
        val url = pending.url().toHttpUrl()
        assertEquals(thumbprint(keys, alias), url.queryParameter("dpop_jkt"), "the code is bound to the platform key (RFC 9449 §10)")
        val session = client.completeAuthorization(pending, browserLogin(pending.url(), "alice", "alice-password"))
        assertEquals(200, http(session).status("me"))
        assertEquals(thumbprint(keys, alias), session.native.dpopThumbprint())
        assertTrue(store.tokens.values.any { it.contains(alias) }, "the record names the key")
        assertEquals(1, keys.count("create"), "${keys.calls}")
        assertEquals(0, keys.count("delete"), "${keys.calls}")

        // A sign-in the user walked away from: its key goes with it.
        val abandoned = client.authorizationRequest(account = "bob", redirectUri = REDIRECT_URI)
        val abandonedAlias = (keys.aliases - alias).single()
        abandoned.close()
        assertEquals(listOf("delete $abandonedAlias"), keys.calls.filter { it.startsWith("delete ") })
        assertEquals(setOf(alias), keys.aliases, "only the signed-in session's key is left")
        assertEquals(0, server.stats().dpopRejectionsOtherThan("nonce"))
    }

    @Test
    fun `a login the server refuses deletes the key made for it`() = runBlocking {
        val keys = JcaDpopKeys()
        assertThrows<AuthException.InvalidGrant> { runBlocking { client(MapStore(), keys).login("alice", "wrong-password") } }
        assertEquals(1, keys.count("create"), "${keys.calls}")
        assertEquals(emptySet<String>(), keys.aliases, "no key outlives a sign-in that made no session: ${keys.calls}")
    }

    @Test
    fun `a client-credentials session's key does not outlive its client`() = runBlocking {
        val keys = JcaDpopKeys()
        for (run in 1..2) {
            // Closing the session and the client ends the session: nothing names its key.
            AuthClient(config().copy(dpopKeys = keys)).use { client ->
                client.clientCredentialsSession().use { it.accessToken() }
            }
        }
        assertEquals(2, keys.count("create"), "${keys.calls}")
        assertEquals(emptySet<String>(), keys.aliases, "keys nothing can find again: ${keys.calls}")
    }

    /** The RFC 7638 thumbprint of the key under [alias], computed here from the Java key. */
    private fun thumbprint(keys: JcaDpopKeys, alias: String): String {
        val point = checkNotNull(keys.publicPoint(alias)) { "no key under $alias" }
        val b64 = Base64.getUrlEncoder().withoutPadding()
        val x = b64.encodeToString(point.copyOfRange(1, 33))
        val y = b64.encodeToString(point.copyOfRange(33, 65))
        val jwk = """{"crv":"P-256","kty":"EC","x":"$x","y":"$y"}"""
        return b64.encodeToString(MessageDigest.getInstance("SHA-256").digest(jwk.toByteArray()))
    }

    private fun coordinate(value: BigInteger): ByteArray {
        val bytes = value.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
        return ByteArray(32 - bytes.size) + bytes
    }

    private fun encodings(bytes: ByteArray): List<String> = listOf(
        Base64.getEncoder().encodeToString(bytes),
        Base64.getEncoder().withoutPadding().encodeToString(bytes),
        Base64.getUrlEncoder().withoutPadding().encodeToString(bytes),
        bytes.joinToString("") { "%02x".format(it) },
    )

    private companion object {
        const val REDIRECT_URI = "dev.tokenkeeper.demo:/oauth2redirect"
    }
}
