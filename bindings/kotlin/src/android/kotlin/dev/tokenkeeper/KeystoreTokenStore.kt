package dev.tokenkeeper

import android.content.Context
import android.content.SharedPreferences
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.util.Base64
import java.security.GeneralSecurityException
import java.security.KeyStore
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * A [TokenStore] for Android: each value is encrypted with AES-256-GCM under a key
 * that lives in the AndroidKeyStore (hardware-backed where the device has it, never
 * extractable) and kept in a private SharedPreferences file.
 *
 * Built on the platform APIs only, not on the deprecated
 * `androidx.security:security-crypto` (`EncryptedSharedPreferences`).
 *
 * - **Durable before it returns**: `save` and `remove` use `commit()`, not `apply()`.
 *   tokenkeeper calls the store on its own background threads, never the main
 *   thread, and a rotated refresh token must be on disk before the new access token
 *   is used; an asynchronous write lost in a crash would sign the user out.
 * - **Bound to its entry**: the store key is the GCM associated data, so a value
 *   copied to another key does not decrypt.
 * - **Excluded from backup**: the AndroidKeyStore key never leaves the device, so a
 *   backed-up file could not be decrypted on another one anyway; exclude it so it is
 *   not copied at all. In `AndroidManifest.xml`, `<application
 *   android:dataExtractionRules="@xml/data_extraction_rules"
 *   android:fullBackupContent="@xml/backup_rules">`, with both files excluding
 *   `<exclude domain="sharedpref" path="tokenkeeper_tokens.xml"/>` (inside
 *   `<cloud-backup>` and `<device-transfer>` for the first, directly for the second).
 * - **Unreadable means absent**: a value that can never decrypt again (the key was
 *   invalidated, the app data was restored onto another device) is deleted and
 *   reported as nothing stored; the user signs in again instead of the app failing.
 *   Any other keystore error fails the call and keeps the value: a passing fault
 *   must not sign anyone out.
 *
 * Requires API 23 (AndroidKeyStore AES keys).
 *
 * ```kotlin
 * val client = AuthClient(config, store = KeystoreTokenStore(applicationContext))
 * ```
 */
class KeystoreTokenStore(
    context: Context,
    private val preferencesName: String = "tokenkeeper_tokens",
    private val keyAlias: String = "tokenkeeper.refresh-tokens",
) : TokenStore {
    private val preferences: SharedPreferences =
        context.applicationContext.getSharedPreferences(preferencesName, Context.MODE_PRIVATE)
    private val lock = Any()

    override fun load(key: String): String? = synchronized(lock) {
        val stored = preferences.getString(key, null) ?: return null
        try {
            decrypt(key, stored)
        } catch (e: AEADBadTagException) {
            forget(key) // encrypted under another key (restored backup, reset keystore)
            null
        } catch (e: KeyPermanentlyInvalidatedException) {
            forget(key)
            null
        } catch (e: IllegalArgumentException) {
            forget(key) // not Base64, or too short to hold an IV: not ours
            null
        } catch (e: GeneralSecurityException) {
            // Anything else may be passing (a busy keystore): keep the value, fail this
            // call; tokenkeeper reports a storage error instead of signing the user out.
            throw StoreException.Failed("could not decrypt with the AndroidKeyStore key: ${e.javaClass.simpleName}")
        }
    }

    override fun save(key: String, refreshToken: String) = synchronized(lock) {
        val value = try {
            encrypt(key, refreshToken)
        } catch (e: GeneralSecurityException) {
            // The exception text names the algorithm or the key alias, never the value.
            throw StoreException.Failed("could not encrypt with the AndroidKeyStore key: ${e.javaClass.simpleName}")
        }
        if (!preferences.edit().putString(key, value).commit()) {
            throw StoreException.Failed("could not write $preferencesName")
        }
    }

    override fun remove(key: String) = synchronized(lock) {
        if (!forget(key)) throw StoreException.Failed("could not write $preferencesName")
    }

    private fun forget(key: String): Boolean = preferences.edit().remove(key).commit()

    private fun secretKey(): SecretKey {
        val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }
        (keyStore.getKey(keyAlias, null) as? SecretKey)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE)
        generator.init(
            KeyGenParameterSpec.Builder(keyAlias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                // The keystore picks a fresh random IV for every encryption.
                .setRandomizedEncryptionRequired(true)
                .build(),
        )
        return generator.generateKey()
    }

    /** Base64 of `IV (12 bytes) || ciphertext+tag`. */
    private fun encrypt(key: String, plaintext: String): String {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, secretKey())
        cipher.updateAAD(key.toByteArray(Charsets.UTF_8))
        val sealed = cipher.doFinal(plaintext.toByteArray(Charsets.UTF_8))
        return Base64.encodeToString(cipher.iv + sealed, Base64.NO_WRAP)
    }

    private fun decrypt(key: String, stored: String): String {
        val bytes = Base64.decode(stored, Base64.NO_WRAP)
        require(bytes.size > IV_BYTES) { "too short" }
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, secretKey(), GCMParameterSpec(TAG_BITS, bytes, 0, IV_BYTES))
        cipher.updateAAD(key.toByteArray(Charsets.UTF_8))
        return String(cipher.doFinal(bytes, IV_BYTES, bytes.size - IV_BYTES), Charsets.UTF_8)
    }

    private companion object {
        const val KEYSTORE = "AndroidKeyStore"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BITS = 128
    }
}
