// Stand-ins for the few Android, ExecuTorch and LiteRT signatures that the app's non-UI files call,
// written from those libraries' documentation so kotlinc can type-check the files here (there is no
// Android SDK on the build machine): android_demo/tools/typecheck-app.sh. They are not the libraries;
// a wrong stub would hide a wrong call — the real check is a Gradle build in Android Studio.
@file:Suppress("unused", "UNUSED_PARAMETER")
package org.tensorflow.lite
class Tensor { fun numBytes(): Int = 0 }
class Interpreter(file: java.io.File, options: Options) : AutoCloseable {
  class Options { fun setNumThreads(n: Int): Options = this }
  fun getSignatureInputs(key: String): Array<String> = arrayOf()
  fun getInputTensorFromSignature(name: String, key: String): Tensor = Tensor()
  fun runSignature(inputs: Map<String, Any>, outputs: Map<String, Any>, key: String) {}
  override fun close() {}
}
