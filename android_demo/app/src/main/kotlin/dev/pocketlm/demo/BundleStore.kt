package dev.pocketlm.demo

import android.content.Context
import java.io.File

/**
 * Where the app finds bundles: its own files (push with
 * `adb push BUNDLE /sdcard/Android/data/dev.pocketlm.demo/files/bundles/`) and adb's shared
 * temp folder (`/data/local/tmp/pocketlm`, where `pocketlm profile --device android` pushes).
 */
object BundleStore {
    const val ADB_ROOT = "/data/local/tmp/pocketlm" // sdk_python/profiling/devices.py ANDROID_BUNDLE_ROOT

    fun roots(context: Context): List<File> = listOfNotNull(context.getExternalFilesDir("bundles"), File(ADB_ROOT))

    fun list(context: Context): List<File> = roots(context).flatMap { root ->
        root.listFiles { f -> f.isDirectory && File(f, "manifest.json").isFile }?.toList() ?: emptyList()
    }.sortedBy { it.name }
}
