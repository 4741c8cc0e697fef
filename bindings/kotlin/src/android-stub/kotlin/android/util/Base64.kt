// Compile-time stub of the Android SDK class (see ../content/Context.kt).
package android.util

object Base64 {
    const val NO_WRAP: Int = 2
    fun encodeToString(input: ByteArray, flags: Int): String = throw UnsupportedOperationException("stub")
    fun decode(str: String, flags: Int): ByteArray = throw UnsupportedOperationException("stub")
}
