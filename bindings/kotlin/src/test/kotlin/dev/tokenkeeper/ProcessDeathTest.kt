package dev.tokenkeeper

import java.io.File
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.util.Base64
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking
import okhttp3.FormBody
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.extension.ExtendWith

/**
 * A sign-in that survives process death, as on Android when the activity's process is
 * killed while the browser is open: a child `java` process starts the authorization,
 * saves it (sealed) to a file and dies without any cleanup (`Runtime.halt`); this JVM,
 * on the same store directory, completes it against the development server.
 */
@ExtendWith(DevServerExtension::class)
class ProcessDeathTest(private val server: DevServer) {

    private val browser = OkHttpClient.Builder().followRedirects(false).callTimeout(10, TimeUnit.SECONDS).build()

    /** Opens the authorization URL, submits the test login, returns the redirect URL. */
    private fun browserLogin(url: String): String {
        val parsed = url.toHttpUrl()
        val form = FormBody.Builder()
        for (name in parsed.queryParameterNames) form.add(name, parsed.queryParameter(name)!!)
        form.add("username", "alice").add("password", "alice-password")
        val action = parsed.newBuilder().query(null).build()
        browser.newCall(Request.Builder().url(action).post(form.build()).build()).execute().use {
            assertEquals(303, it.code)
            return it.header("Location")!!
        }
    }

    @Test
    fun `a sign-in saved by a process that died is completed by a new one`() = runBlocking<Unit> {
        val dir = Files.createTempDirectory("tk-process-death").toFile()
        val out = File(dir, "saved-signin.txt")
        val java = File(System.getProperty("java.home"), "bin/java").path
        val child = ProcessBuilder(
            java,
            "-cp", System.getProperty("java.class.path"),
            "-Djna.library.path=${System.getProperty("jna.library.path")}",
            SavedSignInChild::class.java.name,
            server.baseUrl, File(dir, "store").path, out.path,
        ).redirectErrorStream(true).start()
        val childOutput = child.inputStream.bufferedReader().readText()
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child process ends")
        assertEquals(0, child.exitValue(), childOutput)
        assertFalse(child.isAlive)

        val (saved, url) = out.readLines()
        val state = url.toHttpUrl().queryParameter("state")!!
        assertFalse(saved.contains(state), "the state is sealed")
        assertFalse(saved.contains("alice"), "the account is sealed")

        val redirect = browserLogin(url)
        server.resetStats()
        val client = AuthClient(nativeConfig(server.baseUrl), store = DirectoryStore(File(dir, "store")))
        val session = client.completeSavedAuthorization(saved, redirect)
        assertTrue(session.accessToken().value.isNotEmpty())
        assertEquals(1, server.stats().tokenRequests("authorization_code"))

        // A replay of the same value (another restart, a copied Bundle) never reaches the server.
        val again = AuthClient(nativeConfig(server.baseUrl), store = DirectoryStore(File(dir, "store")))
        val refusal = assertThrows<AuthException.SavedSignInRefused> {
            runBlocking { again.completeSavedAuthorization(saved, redirect) }
        }
        assertTrue(refusal.message!!.contains("completed already"), refusal.message)
        assertFalse(refusal.message!!.contains(saved), "the message does not quote the value")
        assertEquals(1, server.stats().tokenRequests("authorization_code"))
        dir.deleteRecursively()
    }
}

fun nativeConfig(baseUrl: String) = AuthConfig(
    tokenEndpoint = "$baseUrl/oauth2/token",
    clientId = "native-app",
    revocationEndpoint = "$baseUrl/oauth2/revoke",
    authorizationEndpoint = "$baseUrl/oauth2/authorize",
    issuer = baseUrl,
    requireIss = true,
)

/**
 * The child process of [ProcessDeathTest]: starts a sign-in, writes the saved value and
 * the authorization URL to `args[2]`, and halts (no shutdown hooks, no finalizers).
 */
object SavedSignInChild {
    @JvmStatic
    fun main(args: Array<String>) = runBlocking {
        val (baseUrl, storeDir, out) = args
        val client = AuthClient(nativeConfig(baseUrl), store = DirectoryStore(File(storeDir)))
        val pending = client.authorizationRequest(account = "alice", redirectUri = "dev.tokenkeeper.demo:/oauth2redirect")
        val saved = client.saveAuthorization(pending)
        File(out).writeText("$saved\n${pending.url()}\n")
        Runtime.getRuntime().halt(0)
    }
}

/** A [TokenStore] of files in a directory (atomic rename), shared by the two processes. */
class DirectoryStore(private val dir: File) : TokenStore {
    init {
        dir.mkdirs()
    }

    private fun file(key: String) =
        File(dir, Base64.getUrlEncoder().withoutPadding().encodeToString(key.toByteArray()))

    override fun load(key: String): String? = file(key).takeIf { it.exists() }?.readText()

    override fun save(key: String, refreshToken: String) {
        val temp = File.createTempFile("entry", ".tmp", dir)
        temp.writeText(refreshToken)
        Files.move(temp.toPath(), file(key).toPath(), StandardCopyOption.ATOMIC_MOVE)
    }

    override fun remove(key: String) {
        file(key).delete()
    }
}
