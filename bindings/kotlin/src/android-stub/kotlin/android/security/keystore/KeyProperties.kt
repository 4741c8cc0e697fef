// Compile-time stubs of the Android SDK classes (see ../../content/Context.kt).
package android.security.keystore

object KeyProperties {
    const val KEY_ALGORITHM_AES: String = "AES"
    const val PURPOSE_ENCRYPT: Int = 1
    const val PURPOSE_DECRYPT: Int = 2
    const val BLOCK_MODE_GCM: String = "GCM"
    const val ENCRYPTION_PADDING_NONE: String = "NoPadding"
    const val KEY_ALGORITHM_EC: String = "EC"
    const val PURPOSE_SIGN: Int = 4
    const val DIGEST_SHA256: String = "SHA-256"
}

class KeyGenParameterSpec private constructor() : java.security.spec.AlgorithmParameterSpec {
    class Builder(keystoreAlias: String, purposes: Int) {
        fun setBlockModes(vararg blockModes: String): Builder = this
        fun setEncryptionPaddings(vararg paddings: String): Builder = this
        fun setKeySize(keySize: Int): Builder = this
        fun setRandomizedEncryptionRequired(required: Boolean): Builder = this
        fun setAlgorithmParameterSpec(spec: java.security.spec.AlgorithmParameterSpec): Builder = this
        fun setDigests(vararg digests: String): Builder = this
        fun setIsStrongBoxBacked(isStrongBoxBacked: Boolean): Builder = this
        fun build(): KeyGenParameterSpec = KeyGenParameterSpec()
    }
}

class KeyPermanentlyInvalidatedException : java.security.InvalidKeyException()

/** API 28: thrown by key generation when StrongBox cannot hold the key. */
class StrongBoxUnavailableException : java.security.ProviderException()
