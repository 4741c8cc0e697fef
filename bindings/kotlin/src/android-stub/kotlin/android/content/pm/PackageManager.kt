// Compile-time stub of the Android SDK class (see ../Context.kt).
package android.content.pm

abstract class PackageManager {
    abstract fun hasSystemFeature(featureName: String): Boolean

    companion object {
        /** API 28. */
        const val FEATURE_STRONGBOX_KEYSTORE: String = "android.hardware.strongbox_keystore"
    }
}
