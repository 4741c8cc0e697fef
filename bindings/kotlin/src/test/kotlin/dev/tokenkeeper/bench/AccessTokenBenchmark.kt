// mvn -B -Pbench -Dcargo.profile=release verify   (after a release build of the cdylib)
//
// Not a test: a warmed loop that prints numbers. It measures the warm cached read as
// apps make it (Session.cachedAccessToken() and Session.accessToken(), served from the
// Kotlin mirror), next to a plain Kotlin cached-token holder and to the same reads
// through the FFI (the generated NativeSession), paced and unpaced, in one JVM.
//
// What dominates the FFI numbers is not Rust: each JNA call in UniFFI's generated
// Kotlin allocates JNA Structures (the call status, RustBuffers), and every JNA
// `Memory` is registered in a global map and freed by JNA's cleaner thread. A
// suspend call makes about seven such allocations (handle clone, complete, buffer
// free) plus one native→JVM callback.
@file:JvmName("AccessTokenBenchmark")

package dev.tokenkeeper.bench

import dev.tokenkeeper.AuthClient
import dev.tokenkeeper.AuthConfig
import dev.tokenkeeper.DevServer
import dev.tokenkeeper.Session
import kotlinx.coroutines.runBlocking

/** The peer: what an app would write by hand, a volatile field behind a suspend fun. */
class KotlinTokenHolder(initial: String) {
    @Volatile
    private var token: String = initial

    suspend fun accessToken(): String = token
}

private const val WARMUP_ROUNDS = 20
private const val ROUNDS = 50
private const val CALLS_PER_ROUND = 2_000

/**
 * Median over rounds of (round time / calls): robust to GC pauses and JIT hiccups.
 * Paced: a `System.gc()` between rounds, so garbage left by one round (JNA's native
 * allocations, mostly) is not paid for in the next; unpaced: rounds back to back.
 */
private inline fun medianNanosPerCall(paced: Boolean, crossinline call: suspend () -> Any): Double = runBlocking {
    var sink = 0
    val perCall = DoubleArray(ROUNDS)
    repeat(WARMUP_ROUNDS + ROUNDS) { round ->
        if (paced) System.gc()
        val start = System.nanoTime()
        repeat(CALLS_PER_ROUND) { sink += System.identityHashCode(call()) and 1 }
        val elapsed = System.nanoTime() - start
        if (round >= WARMUP_ROUNDS) perCall[round - WARMUP_ROUNDS] = elapsed.toDouble() / CALLS_PER_ROUND
    }
    if (sink == 42) println() // keeps the results alive
    perCall.sort()
    perCall[ROUNDS / 2]
}

fun main() {
    DevServer.start().use { server ->
        val client = AuthClient(
            AuthConfig(
                tokenEndpoint = server.tokenEndpoint,
                clientId = "demo-client",
                clientSecret = "demo-secret",
                scopes = listOf("read"),
            ),
        )
        val session: Session = client.clientCredentialsSession()
        val first = runBlocking { session.accessToken() }
        val holder = KotlinTokenHolder(first.value)
        server.resetStats()

        println("warm cache, median ns per call of $ROUNDS rounds x $CALLS_PER_ROUND calls")
        println("%-52s %12s %12s".format("", "paced (GC)", "unpaced"))
        fun row(label: String, call: suspend () -> Any): Double {
            val paced = medianNanosPerCall(true, call)
            val unpaced = medianNanosPerCall(false, call)
            println("%-52s %12.1f %12.1f".format(label, paced, unpaced))
            return maxOf(paced, unpaced)
        }
        val mirrorSync = row("session.cachedAccessToken()   (mirror, sync)") { session.cachedAccessToken()!! }
        val mirrorSuspend = row("session.accessToken()         (mirror, suspend)") { session.accessToken() }
        row("plain Kotlin @Volatile holder (suspend)") { holder.accessToken() }
        row("native.cachedAccessToken()    (through the FFI)") { session.native.cachedAccessToken()!! }
        row("native.accessToken()          (through the FFI)") { session.native.accessToken() }
        val tokenRequests = server.stats().tokenRequests
        println("token requests during the run: $tokenRequests (expected 0)")
        val worst = maxOf(mirrorSync, mirrorSuspend)
        println("target: warm cached read <= 1000 ns median: ${if (worst <= 1_000) "met" else "NOT met"} (worst %.1f ns)".format(worst))
    }
}
