package dev.pocketlm.demo

import android.app.Activity
import android.os.Build
import android.os.Bundle
import android.util.Log
import dev.pocketlm.core.Benchmark
import dev.pocketlm.core.BenchmarkSettings
import dev.pocketlm.core.DeviceInfo
import dev.pocketlm.core.MemorySampler
import dev.pocketlm.core.PocketLMException
import java.io.File
import kotlin.concurrent.thread

/**
 * Benchmark mode, no UI: started by `pocketlm profile --device android` with
 * `am start -n dev.pocketlm.demo/.BenchmarkActivity --es bundle … --es result … --es prompt_lengths 32,128
 * --ei gen 64 --ei runs 5 --ei warmup 1 [--ei threads 4]`, it runs the benchmark on a worker thread,
 * writes the benchmark-result JSON to `result` (atomically) and finishes. Errors go to logcat
 * (tag pocketlm) and the activity exits without a result, which the SDK reports.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val extras = intent.extras
        // am start sends --ei values as ints and --es as strings: read both kinds as text.
        val raw = extras?.keySet()?.associateWith { key -> extras.get(key)?.toString() } ?: emptyMap()
        thread(name = "pocketlm-benchmark") {
            try {
                val settings = BenchmarkSettings.parse(raw)
                val memory = MemorySampler()
                val threads = settings.threads ?: DemoModel.defaultThreads()
                DemoModel.load(File(settings.bundle), threads).use { demo ->
                    val prompt = assets.open("profile_prompt.txt").bufferedReader().use { it.readText() }
                    val result = Benchmark.run(settings, demo.model, demo.loadMs, deviceInfo(), threads, Engines.versions, prompt, memory) {
                        Log.i(TAG, it)
                    }
                    Benchmark.write(result, File(settings.result))
                    Log.i(TAG, "wrote ${settings.result}")
                }
            } catch (e: PocketLMException) {
                Log.e(TAG, "benchmark failed: ${e.message}")
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
            } finally {
                runOnUiThread { finishAndRemoveTask() }
            }
        }
    }

    private fun deviceInfo() = DeviceInfo(
        kind = "android",
        id = Build.ID, // apps cannot read the serial (Android 10+): `pocketlm profile` puts adb's serial here
        model = "${Build.MANUFACTURER} ${Build.MODEL}",
        os = "Android ${Build.VERSION.RELEASE} (SDK ${Build.VERSION.SDK_INT})",
        cpu = Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown",
        cores = Runtime.getRuntime().availableProcessors(),
    )

    companion object {
        const val TAG = "pocketlm"
    }
}
