// Compile-time stub of the Android SDK class (see ../content/Context.kt). In the SDK
// SDK_INT is a static final field read at run time, not a compile-time constant.
package android.os

class Build {
    object VERSION {
        @JvmField
        val SDK_INT: Int = 0
    }

    object VERSION_CODES {
        const val P: Int = 28
    }
}
