package dev.tokenkeeper

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.Signature
import java.security.spec.ECGenParameterSpec

/**
 * DPoP keys (RFC 9449) in the Android Keystore: one non-exportable P-256 key per
 * session, created in StrongBox when the device has it (API 28+), in the TEE otherwise.
 * The private key never enters the app's memory, the session record or a backup: the
 * core keeps only the key's alias and thumbprint in the record and asks this class for
 * signatures.
 *
 * ```kotlin
 * val client = AuthClient(AuthConfig(..., dpop = DpopMode.REQUIRED,
 *                                    dpopKeys = AndroidKeystoreDpopKeys(applicationContext)),
 *                         store = KeystoreTokenStore(applicationContext))
 * ```
 *
 * - **Non-exportable by construction**: an AndroidKeyStore private key is a handle;
 *   `PrivateKey.getEncoded()` is `null` and the key material stays in the keystore
 *   daemon (TEE or StrongBox).
 * - **Usable in the background**: no user authentication is required, so a refresh
 *   signs while the device is locked, like the refresh itself runs.
 * - **Not backed up, not transferred**: Keystore keys never leave the device. After a
 *   reinstall, "clear data" or a backup restored on another device the alias finds no key;
 *   the core then reports `AuthException.ReauthenticationRequired` ("the DPoP key ... is
 *   gone") before any request and the user signs in again.
 * - **Errors**: every failure is thrown as [DpopKeyException.Failed] with a reason that
 *   names the operation and the exception class, never key bytes or a message.
 *
 * Methods are called on the core's threads, never the main thread; StrongBox key
 * generation can take a few hundred milliseconds. Requires API 23 (AndroidKeyStore EC keys).
 *
 * **Not run here**: this file is compiled against stubs of the Android SDK
 * (`mvn -Pandroid-stub compile`, run by `scripts/test-kotlin.sh`); it has not run on a
 * device or an emulator (this project has neither). The core side of the seam and the
 * same calls with a software key (`JcaDpopKeys` in the JVM tests) are tested on the JVM.
 */
class AndroidKeystoreDpopKeys(context: Context) : PlatformDpopKeys {

    // API 28 introduced StrongBox; the feature flag says whether this device has one.
    private val strongBox: Boolean =
        Build.VERSION.SDK_INT >= Build.VERSION_CODES.P &&
            context.applicationContext.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)

    override fun create(alias: String): ByteArray = keystore("create the DPoP key") {
        // Replace what is there: a key under this alias belongs to an abandoned sign-in.
        if (it.containsAlias(alias)) it.deleteEntry(alias)
        val pair = if (strongBox) {
            try {
                generate(alias, strongBox = true)
            } catch (e: StrongBoxUnavailableException) {
                // The feature is declared but StrongBox refused this key (busy, out of
                // slots, an OEM quirk): the TEE key is the documented fallback.
                generate(alias, strongBox = false)
            }
        } else {
            generate(alias, strongBox = false)
        }
        DpopPublicKeys.sec1Uncompressed(pair.public)
    }

    override fun publicKey(alias: String): ByteArray? = keystore("read the DPoP public key") {
        // The keystore keeps the public key in the entry's self-signed certificate.
        val certificate = it.getCertificate(alias) ?: return@keystore null
        DpopPublicKeys.sec1Uncompressed(certificate.publicKey)
    }

    override fun sign(alias: String, message: ByteArray): ByteArray = keystore("sign with the DPoP key") {
        val key = it.getKey(alias, null) as? PrivateKey
            ?: throw DpopKeyException.Failed("no DPoP key in the AndroidKeyStore under $alias")
        // DER (ASN.1 SEQUENCE of r and s); the core converts it to the JWS r || s.
        Signature.getInstance(SIGNATURE_ALGORITHM).run {
            initSign(key)
            update(message)
            sign()
        }
    }

    override fun delete(alias: String) {
        keystore("delete the DPoP key") {
            // deleteEntry on a missing alias has thrown on some releases; none there is no error.
            if (it.containsAlias(alias)) it.deleteEntry(alias)
        }
    }

    private fun generate(alias: String, strongBox: Boolean): KeyPair {
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
            .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
            .setDigests(KeyProperties.DIGEST_SHA256)
        if (strongBox) spec.setIsStrongBoxBacked(true)
        val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, KEYSTORE)
        generator.initialize(spec.build())
        return generator.generateKeyPair()
    }

    /**
     * Runs [block] on a loaded AndroidKeyStore and turns whatever it throws into
     * [DpopKeyException.Failed] naming [operation] and the exception class: keystore
     * failures surface as checked exceptions (KeyStoreException, UnrecoverableKeyException,
     * IOException from `load`) and unchecked ones (ProviderException and its subclasses,
     * IllegalStateException), and the core needs the declared error type for all of them.
     */
    private inline fun <T> keystore(operation: String, block: (KeyStore) -> T): T =
        try {
            block(KeyStore.getInstance(KEYSTORE).apply { load(null) })
        } catch (e: DpopKeyException) {
            throw e
        } catch (e: Exception) {
            throw DpopKeyException.Failed("AndroidKeyStore: could not $operation: ${e.javaClass.simpleName}")
        }

    private companion object {
        const val KEYSTORE = "AndroidKeyStore"
        const val SIGNATURE_ALGORITHM = "SHA256withECDSA"
    }
}
