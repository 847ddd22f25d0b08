// Stand-ins for the few Android, ExecuTorch and LiteRT signatures that the app's non-UI files call,
// written from those libraries' documentation so kotlinc can type-check the files here (there is no
// Android SDK on the build machine): android_demo/tools/typecheck-app.sh. They are not the libraries;
// a wrong stub would hide a wrong call — the real check is a Gradle build in Android Studio.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.app
open class Activity : android.content.Context() {
  open fun onCreate(savedInstanceState: android.os.Bundle?) {}
  val intent: android.content.Intent get() = android.content.Intent()
  fun runOnUiThread(r: Runnable) {}
  fun finishAndRemoveTask() {}
}
