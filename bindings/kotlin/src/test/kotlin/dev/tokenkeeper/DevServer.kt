package dev.tokenkeeper

import java.io.File
import java.util.concurrent.TimeUnit
import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import org.junit.jupiter.api.extension.BeforeAllCallback
import org.junit.jupiter.api.extension.ExtensionContext
import org.junit.jupiter.api.extension.ParameterContext
import org.junit.jupiter.api.extension.ParameterResolver

/**
 * The `tokenkeeper-devserver` binary (crate `devserver/`) running as a child process:
 * an in-memory OAuth2 authorization server plus a bearer-protected `/api/…`, with an
 * admin API to read statistics, revoke tokens and inject faults.
 *
 * Its path comes from the `tokenkeeper.devserver` system property (set by the pom to
 * `target/<profile>/tokenkeeper-devserver`). It prints `listening on http://127.0.0.1:PORT`
 * as its first stdout line; [stop] kills it.
 */
class DevServer private constructor(private val process: Process, val baseUrl: String) : AutoCloseable {

    val tokenEndpoint get() = "$baseUrl/oauth2/token"
    val revocationEndpoint get() = "$baseUrl/oauth2/revoke"
    fun resourceUrl(path: String) = "$baseUrl/api/$path"

    private val admin = OkHttpClient.Builder().callTimeout(10, TimeUnit.SECONDS).build()

    /** What the server saw since start or the last [resetStats]. */
    fun stats(): Stats = Stats(get("/_admin/stats"))

    fun resetStats() = post("/_admin/reset-stats")

    /** Revokes every token (access and refresh) of `subject`: a user name or a client id. */
    fun revokeSubject(subject: String) = post("/_admin/revoke-subject?subject=$subject")

    /** Changes [username]'s password: the password a session holds in memory stops working. */
    fun setPassword(username: String, password: String) =
        post("/_admin/set-password?username=$username&password=$password")

    /** Queues a fault for the next request to `endpoint` (token, revocation, resource). */
    fun fault(endpoint: String, json: String) = post("/_admin/fault?endpoint=$endpoint", json)

    fun clearFaults() = post("/_admin/clear-faults")

    /** A new DPoP nonce (the server needs `--dpop-nonces`): proofs with the old one are refused. */
    fun rotateDpopNonce() = post("/_admin/rotate-dpop-nonce")

    private fun get(path: String): String =
        admin.newCall(Request.Builder().url(baseUrl + path).build()).execute().use {
            check(it.isSuccessful) { "GET $path: HTTP ${it.code}" }
            it.body!!.string()
        }

    private fun post(path: String, json: String = "") {
        val body = json.toRequestBody("application/json".toMediaType())
        admin.newCall(Request.Builder().url(baseUrl + path).post(body).build()).execute().use {
            check(it.isSuccessful) { "POST $path: HTTP ${it.code} ${it.body?.string()}" }
        }
    }

    fun stop() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly()
    }

    override fun close() = stop()

    /** The JSON statistics, read with a couple of patterns (no JSON library needed). */
    class Stats(val json: String) {
        val tokenRequests: Long get() = number("token_requests")
        val resourceRequests: Long get() = number("resource_requests")
        val revocations: Int get() = Regex("\"token\"\\s*:").findAll(section("revocations")).count()

        /** Revocation requests that carried a `DPoP` header (valid or not: see [dpopProofsAccepted]). */
        val revocationsWithProof: Int get() = Regex("\"dpop_proof\"\\s*:\\s*true").findAll(section("revocations")).count()

        val dpopProofsAccepted: Long get() = number("dpop_proofs_accepted")

        /** Proofs refused for [reason] (`nonce`, `bound_token_as_bearer`, `jkt_mismatch`, …). */
        fun dpopRejections(reason: String): Long =
            Regex("\"$reason\"\\s*:\\s*(\\d+)").find(section("dpop_rejections"))
                ?.groupValues?.get(1)?.toLong() ?: 0

        /** Proofs refused for any reason but [allowed] (a bad signature, a wrong key, a replay, …). */
        fun dpopRejectionsOtherThan(vararg allowed: String): Long =
            Regex("\"(\\w+)\"\\s*:\\s*(\\d+)").findAll(section("dpop_rejections"))
                .filter { it.groupValues[1] !in allowed }
                .sumOf { it.groupValues[2].toLong() }

        /** Token requests with `grant_type` = [grant] (client_credentials, password, refresh_token). */
        fun tokenRequests(grant: String): Long =
            Regex("\"$grant\"\\s*:\\s*(\\d+)").find(section("token_requests_by_grant"))
                ?.groupValues?.get(1)?.toLong() ?: 0

        private fun number(key: String): Long =
            Regex("\"$key\"\\s*:\\s*(\\d+)").find(json)?.groupValues?.get(1)?.toLong()
                ?: error("no $key in $json")

        private fun section(key: String): String {
            val start = json.indexOf("\"$key\"")
            if (start < 0) return ""
            val open = json.indexOfAny(charArrayOf('{', '['), start)
            val close = json.indexOf(if (json[open] == '{') '}' else ']', open)
            return json.substring(open, close + 1)
        }

        override fun toString() = json
    }

    companion object {
        fun start(vararg flags: String): DevServer {
            val binary = File(
                System.getProperty("tokenkeeper.devserver")
                    ?: error("system property tokenkeeper.devserver is not set (run through Maven)"),
            )
            check(binary.canExecute()) {
                "$binary is missing: build it with `cargo build -p tokenkeeper-devserver`"
            }
            val process = ProcessBuilder(listOf(binary.path, "--port", "0") + flags)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start()
            val stdout = process.inputStream.bufferedReader()
            // readLine blocks; a watchdog kills a server that never says where it listens.
            val watchdog = Thread {
                try {
                    Thread.sleep(20_000)
                    process.destroyForcibly()
                } catch (_: InterruptedException) {
                }
            }.apply { isDaemon = true; start() }
            val first = stdout.readLine()
            watchdog.interrupt()
            val url = first?.removePrefix("listening on ")?.trim()
            if (first == null || url == first || url == null) {
                process.destroyForcibly()
                error("tokenkeeper-devserver did not start; its first line was: $first")
            }
            // Keep draining stdout so the server never blocks on a full pipe.
            Thread { stdout.useLines { lines -> lines.forEach { } } }.apply { isDaemon = true; start() }
            return DevServer(process, url)
        }
    }
}

/**
 * JUnit 5 extension: starts one [DevServer] for the whole test run (the first class
 * that asks for it) and stops it when the run ends; injects it as a test parameter.
 */
class DevServerExtension : BeforeAllCallback, ParameterResolver {
    override fun beforeAll(context: ExtensionContext) {
        server(context)
    }

    override fun supportsParameter(parameter: ParameterContext, extension: ExtensionContext) =
        parameter.parameter.type == DevServer::class.java

    override fun resolveParameter(parameter: ParameterContext, extension: ExtensionContext): Any =
        server(extension)

    private fun server(context: ExtensionContext): DevServer =
        context.root.getStore(ExtensionContext.Namespace.GLOBAL)
            .getOrComputeIfAbsent("tokenkeeper-devserver", { Resource(DevServer.start()) }, Resource::class.java)
            .server

    /** Closed by JUnit when the root context (the whole run) ends. */
    private class Resource(val server: DevServer) : ExtensionContext.Store.CloseableResource, AutoCloseable {
        override fun close() = server.stop()
    }
}
