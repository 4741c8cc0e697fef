package dev.tokenkeeper

import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPrivateKey
import java.security.spec.ECGenParameterSpec
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList

/**
 * A [PlatformDpopKeys] on the JVM's own provider (SunEC): the Android Keystore's stand-in
 * in the JVM tests, with the same calls `AndroidKeystoreDpopKeys` makes
 * (`SHA256withECDSA`, DER signatures, [DpopPublicKeys.sec1Uncompressed]) and a software
 * key in a map instead of a keystore entry.
 *
 * It records every call, and lets a test do what the platform does behind the SDK's
 * back: lose a key (reinstall, "clear data", a backup restored elsewhere) or put another
 * key under the same alias.
 *
 * [rawSignatures] signs in the raw 64-byte `r || s` form (IEEE P1363, what some key
 * stores return) instead of DER; the core accepts both.
 */
internal class JcaDpopKeys(private val rawSignatures: Boolean = false) : PlatformDpopKeys {
    private val keys = ConcurrentHashMap<String, KeyPair>()

    /** Every call in order, as `"create <alias>"`, `"publicKey <alias>"`, `"sign <alias>"`, `"delete <alias>"`. */
    val calls: MutableList<String> = CopyOnWriteArrayList()

    /** How many calls of [operation] (`create`, `publicKey`, `sign`, `delete`) were made. */
    fun count(operation: String): Int = calls.count { it.startsWith("$operation ") }

    /** The aliases that hold a key now. */
    val aliases: Set<String> get() = keys.keys.toSet()

    /** The private key under [alias], for a test that looks for it where it must not be. */
    fun privateKey(alias: String): ECPrivateKey? = keys[alias]?.private as? ECPrivateKey

    /** The public key under [alias] as [publicKey] returns it, without recording a call. */
    fun publicPoint(alias: String): ByteArray? = keys[alias]?.let { DpopPublicKeys.sec1Uncompressed(it.public) }

    /** The key is gone, the way a reinstall or a restore on another device loses a Keystore key. */
    fun loseKey(alias: String) {
        checkNotNull(keys.remove(alias)) { "no key under $alias" }
    }

    /** Another key under the same alias: what the SDK recorded no longer matches. */
    fun replaceKey(alias: String) {
        check(keys.replace(alias, generate()) != null) { "no key under $alias" }
    }

    override fun create(alias: String): ByteArray {
        calls += "create $alias"
        val pair = generate()
        keys[alias] = pair
        return DpopPublicKeys.sec1Uncompressed(pair.public)
    }

    override fun publicKey(alias: String): ByteArray? {
        calls += "publicKey $alias"
        return publicPoint(alias)
    }

    override fun sign(alias: String, message: ByteArray): ByteArray {
        calls += "sign $alias"
        val pair = keys[alias] ?: throw DpopKeyException.Failed("no DPoP key under $alias")
        val algorithm = if (rawSignatures) "SHA256withECDSAinP1363Format" else "SHA256withECDSA"
        return Signature.getInstance(algorithm, PROVIDER).run {
            initSign(pair.private)
            update(message)
            sign()
        }
    }

    override fun delete(alias: String) {
        calls += "delete $alias"
        keys.remove(alias)
    }

    private fun generate(): KeyPair =
        KeyPairGenerator.getInstance("EC", PROVIDER).run {
            initialize(ECGenParameterSpec("secp256r1"))
            generateKeyPair()
        }

    override fun toString() = "JcaDpopKeys(${keys.size} keys)"

    private companion object {
        const val PROVIDER = "SunEC"
    }
}
