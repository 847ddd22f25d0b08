// Stand-ins for the few Android, ExecuTorch and LiteRT signatures that the app's non-UI files call,
// written from those libraries' documentation so kotlinc can type-check the files here (there is no
// Android SDK on the build machine): android_demo/tools/typecheck-app.sh. They are not the libraries;
// a wrong stub would hide a wrong call — the real check is a Gradle build in Android Studio.
@file:Suppress("unused", "UNUSED_PARAMETER")
package org.pytorch.executorch
class Tensor { companion object { @JvmStatic fun fromBlob(data: LongArray, shape: LongArray): Tensor = Tensor() }
  val dataAsFloatArray: FloatArray get() = FloatArray(0) }
class EValue { companion object { @JvmStatic fun from(t: Tensor): EValue = EValue() }; fun toTensor(): Tensor = Tensor() }
class Module { companion object { const val LOAD_MODE_MMAP = 1; @JvmStatic fun load(path: String, mode: Int, threads: Int): Module = Module() }
  fun forward(vararg inputs: EValue): Array<EValue> = arrayOf()
  fun execute(methodName: String, vararg inputs: EValue): Array<EValue> = arrayOf(); fun destroy() {} }
