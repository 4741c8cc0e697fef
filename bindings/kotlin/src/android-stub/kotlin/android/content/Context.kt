// Compile-time stub of the Android SDK class, for `mvn -Pandroid-stub compile` only:
// never packaged, never run. Signatures match the SDK; bodies do not exist.
package android.content

abstract class Context {
    abstract val applicationContext: Context
    abstract val packageManager: android.content.pm.PackageManager
    abstract fun getSharedPreferences(name: String, mode: Int): SharedPreferences

    companion object {
        const val MODE_PRIVATE: Int = 0
    }
}
