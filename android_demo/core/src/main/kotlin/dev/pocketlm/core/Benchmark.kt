package dev.pocketlm.core

import org.json.JSONArray
import org.json.JSONObject
import java.io.File

class BenchmarkException(message: String) : PocketLMException(message)

/**
 * What `pocketlm profile --device android|ios` asks for (intent extras / launch arguments):
 * the bundle, where to write the result, prompt lengths, tokens to generate, runs, warm-ups, threads.
 */
data class BenchmarkSettings(
    val bundle: String,
    val result: String,
    val promptLengths: List<Int>,
    val gen: Int,
    val runs: Int,
    val warmup: Int,
    val threads: Int?,
) {
    companion object {
        /** Parse the key/value extras the SDK sends (sdk_python/profiling/devices.py run_android). */
        fun parse(extras: Map<String, String?>): BenchmarkSettings {
            fun need(key: String) = extras[key]?.takeIf { it.isNotBlank() } ?: throw BenchmarkException("benchmark mode needs the '$key' extra")
            fun int(key: String, default: Int?, min: Int): Int? {
                val raw = extras[key] ?: return default
                val v = raw.trim().toIntOrNull() ?: throw BenchmarkException("'$key' must be an integer, got '$raw'")
                if (v < min) throw BenchmarkException("'$key' must be >= $min, got $v")
                return v
            }
            val lengths = need("prompt_lengths").split(",").map { piece ->
                val n = piece.trim().toIntOrNull() ?: throw BenchmarkException("prompt_lengths must be integers separated by commas, got '$piece'")
                if (n < 1) throw BenchmarkException("prompt lengths must be >= 1, got $n")
                n
            }
            return BenchmarkSettings(
                bundle = need("bundle"),
                result = need("result"),
                promptLengths = lengths,
                gen = int("gen", 64, 1)!!,
                runs = int("runs", 5, 1)!!,
                warmup = int("warmup", 1, 0)!!,
                threads = int("threads", null, 1),
            )
        }
    }
}

data class DeviceInfo(val kind: String, val id: String, val model: String, val os: String, val cpu: String, val cores: Int)

/** Samples the process's resident memory (VmRSS; VmHWM for the peak) from /proc/self/status, as Linux and Android report it. */
class MemorySampler(private val intervalMs: Long = 250) : AutoCloseable {
    private val samples = ArrayList<Pair<Long, Long>>()
    private val start = System.nanoTime()
    @Volatile private var running = true
    private val thread = Thread {
        while (running) {
            record()
            try { Thread.sleep(intervalMs) } catch (e: InterruptedException) { break }
        }
    }.apply { isDaemon = true; start() }

    private fun record() {
        val kb = statusKb("VmRSS") ?: return
        synchronized(samples) { samples.add((System.nanoTime() - start) / 1_000_000 to kb) }
    }

    fun peakKb(): Long = statusKb("VmHWM") ?: synchronized(samples) { samples.maxOfOrNull { it.second } ?: 0 }

    fun samples(): List<Pair<Long, Long>> = synchronized(samples) { samples.toList() }

    override fun close() {
        running = false
        thread.interrupt()
        thread.join(1000)
        record()
    }

    companion object {
        fun statusKb(field: String): Long? = try {
            File("/proc/self/status").readLines().firstOrNull { it.startsWith("$field:") }
                ?.split(Regex("\\s+"))?.getOrNull(1)?.toLongOrNull()
        } catch (e: java.io.IOException) {
            null
        }
    }
}

/**
 * Benchmark mode, the same measurement as the SDK's host runner (sdk_python/profiling/host.py):
 * for each prompt length, warm-ups then timed runs of reset → prefill → greedy first token →
 * gen-1 decode steps, on real English text cut to the exact length. The result is the shared
 * benchmark-result JSON (sdk_python/schemas/benchmark-result.schema.json), written atomically.
 */
object Benchmark {
    const val FORMAT = "pocketlm-benchmark-result"
    const val VERSION = 1

    /** [length] tokens of [text] (repeated if shorter), with BOS as the tokenizer wants it. */
    fun promptTokens(model: LanguageModel, text: String, length: Int): IntArray {
        val ids = model.encode(text).toMutableList()
        while (ids.size < length) ids.addAll(model.encode(text, addBos = false).toList())
        return ids.take(length).toIntArray()
    }

    fun timedRun(engine: Engine, prompt: IntArray, gen: Int): JSONObject {
        engine.reset()
        val t0 = System.nanoTime()
        val logits = engine.prefill(prompt)
        val t1 = System.nanoTime()
        var token = Sampler.argmax(logits)
        val t2 = System.nanoTime()
        repeat(gen - 1) { token = Sampler.argmax(engine.decode(token)) }
        val t3 = System.nanoTime()
        return JSONObject()
            .put("prompt_tokens", prompt.size)
            .put("prefill_ms", (t1 - t0) / 1e6)
            .put("first_token_ms", (t2 - t0) / 1e6)
            .put("decode_tokens", maxOf(gen - 1, 0))
            .put("decode_ms", (t3 - t2) / 1e6)
    }

    fun run(
        settings: BenchmarkSettings,
        model: LanguageModel,
        loadMs: Double,
        device: DeviceInfo,
        threads: Int,
        versions: Map<String, String>,
        promptText: String,
        memory: MemorySampler,
        onProgress: (String) -> Unit = {},
    ): JSONObject {
        val maxContext = model.engine.maxContext
        val runs = JSONArray()
        memory.use { // the sampler stops however the runs end
            settings.promptLengths.firstOrNull { it + settings.gen > maxContext }?.let {
                throw BenchmarkException("prompt length $it + ${settings.gen} generated tokens exceed this bundle's $maxContext-token context")
            }
            for (n in settings.promptLengths) {
                val prompt = promptTokens(model, promptText, n)
                onProgress("prompt $n: ${settings.warmup} warm-up + ${settings.runs} runs")
                repeat(settings.warmup) { timedRun(model.engine, prompt, settings.gen) }
                repeat(settings.runs) { runs.put(timedRun(model.engine, prompt, settings.gen)) }
            }
        }
        return JSONObject()
            .put("format", FORMAT)
            .put("version", VERSION)
            .put(
                "device",
                JSONObject().put("kind", device.kind).put("id", device.id).put("model", device.model)
                    .put("os", device.os).put("cpu", device.cpu).put("cores", device.cores),
            )
            .put("runtime", JSONObject().put("backend", model.bundle.runtime.backend).put("threads", threads).put("versions", JSONObject(versions)))
            .put("bundle", JSONObject().put("name", model.bundle.name).put("program_sha256", model.bundle.programSha256))
            .put(
                "settings",
                JSONObject().put("prompt_lengths", JSONArray(settings.promptLengths)).put("gen_tokens", settings.gen)
                    .put("runs", settings.runs).put("warmup", settings.warmup),
            )
            .put("load_ms", loadMs)
            .put("runs", runs)
            .put(
                "memory",
                JSONObject().put("peak_rss_kb", memory.peakKb())
                    .put("samples", JSONArray(memory.samples().map { JSONArray(listOf(it.first, it.second)) })),
            )
            .put("energy", JSONObject().put("available", false).put("reason", "measured by pocketlm profile from the battery counters"))
            .put("operators", JSONObject.NULL)
    }

    /** Write [result] to [path] through a temporary file and a rename: a reader never sees half a result. */
    fun write(result: JSONObject, path: File) {
        path.absoluteFile.parentFile?.mkdirs()
        val tmp = File(path.absoluteFile.parentFile, ".${path.name}.partial")
        tmp.writeText(result.toString(2), Charsets.UTF_8)
        if (!tmp.renameTo(path)) {
            tmp.delete()
            throw BenchmarkException("could not write the benchmark result to $path")
        }
    }
}
