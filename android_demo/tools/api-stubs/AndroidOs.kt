// Stand-ins for the few Android, ExecuTorch and LiteRT signatures that the app's non-UI files call,
// written from those libraries' documentation so kotlinc can type-check the files here (there is no
// Android SDK on the build machine): android_demo/tools/typecheck-app.sh. They are not the libraries;
// a wrong stub would hide a wrong call — the real check is a Gradle build in Android Studio.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.os
class Bundle { fun keySet(): Set<String> = emptySet(); fun get(key: String): Any? = null }
object Build { @JvmField val ID = ""; @JvmField val MANUFACTURER = ""; @JvmField val MODEL = ""; @JvmField val SUPPORTED_ABIS = arrayOf<String>()
  object VERSION { @JvmField val RELEASE = ""; @JvmField val SDK_INT = 0 } }
