package dev.pocketlm.core

import kotlin.math.exp
import kotlin.math.ln

class GenerationException(message: String) : PocketLMException(message)

/**
 * A loaded model with a KV cache, as sdk_python/engines/base.py defines it: positions advance with
 * every token fed in. The app implements [forward] per runtime (ExecuTorch Module, LiteRT); the rest
 * (chunked prefill, context checks, rewind) is written once here.
 */
abstract class Engine(val maxContext: Int, val maxPrefill: Int) : AutoCloseable {
    var position: Int = 0
        private set

    /** Counts reset() calls: a holder of cached positions (the predictor) can tell its cache was dropped. */
    var epoch: Int = 0
        private set

    /** Milliseconds spent inside the runtime's own call, summed (the rest of decode time is the app's). */
    var runtimeMs: Double = 0.0

    val room: Int get() = maxContext - position

    /** Run [tokens] at positions start.. and return the last token's logits. */
    protected abstract fun forward(tokens: IntArray, start: Int): FloatArray

    fun prefill(tokens: IntArray): FloatArray {
        if (tokens.isEmpty()) throw GenerationException("prefill needs at least one token")
        checkRoom(tokens.size)
        var logits: FloatArray? = null
        var i = 0
        while (i < tokens.size) { // chunk prompts longer than one call takes
            val chunk = tokens.copyOfRange(i, minOf(i + maxPrefill, tokens.size))
            logits = forward(chunk, position)
            position += chunk.size
            i += maxPrefill
        }
        return logits!!
    }

    fun decode(token: Int): FloatArray {
        checkRoom(1)
        val logits = forward(intArrayOf(token), position)
        position += 1
        return logits
    }

    open fun reset() {
        position = 0
        epoch += 1
    }

    /** Keep the first [n] cached tokens; later calls overwrite what follows. */
    fun rewind(n: Int) {
        if (n < 0 || n > position) throw GenerationException("cannot rewind to $n: $position tokens are cached")
        position = n
    }

    private fun checkRoom(n: Int) {
        if (n > room) {
            throw GenerationException("$n more tokens do not fit: $position of this bundle's $maxContext-token context used")
        }
    }

    override fun close() {}
}

data class SamplingParams(
    val temperature: Double = 0.0,
    val topK: Int = 0,
    val topP: Double = 1.0,
    val repetitionPenalty: Double = 1.0,
    val seed: Long? = null,
) {
    init {
        if (temperature < 0) throw GenerationException("temperature must be >= 0, got $temperature")
        if (topK < 0) throw GenerationException("top_k must be >= 0, got $topK")
        if (!(topP > 0 && topP <= 1)) throw GenerationException("top_p must be in (0, 1], got $topP")
        if (repetitionPenalty <= 0) throw GenerationException("repetition_penalty must be > 0, got $repetitionPenalty")
    }

    companion object {
        /** A preset's `sampling` object (task presets in the manifest). */
        fun fromJson(json: org.json.JSONObject): SamplingParams = SamplingParams(
            temperature = json.optDouble("temperature", 0.0),
            topK = json.optInt("top_k", 0),
            topP = json.optDouble("top_p", 1.0),
            repetitionPenalty = json.optDouble("repetition_penalty", 1.0),
        )
    }
}

/**
 * Next-token choice as sdk_python/sampling.py makes it: repetition penalty, then greedy, or
 * temperature, top-k and top-p. The distribution is the SDK's (tested on shared vectors); the
 * random stream is java.util.Random's, so a seeded run here differs from a seeded run in Python.
 */
class Sampler(val params: SamplingParams) {
    private val random = params.seed?.let { java.util.Random(it) } ?: java.util.Random()

    fun sample(logits: FloatArray, history: List<Int>): Int {
        val penalized = penalized(logits, history)
        if (params.temperature == 0.0) return argmax(penalized)
        val probs = probabilities(penalized)
        var r = random.nextDouble()
        for (i in probs.indices) {
            r -= probs[i]
            if (r < 0) return i
        }
        return probs.indices.last { probs[it] > 0 }
    }

    fun penalized(logits: FloatArray, history: List<Int>): FloatArray {
        if (params.repetitionPenalty == 1.0 || history.isEmpty()) return logits
        val p = params.repetitionPenalty.toFloat() // float32 arithmetic, as NumPy does it on float32 logits
        val out = logits.copyOf()
        for (t in history.toSet()) {
            if (t < 0 || t >= out.size) continue
            val v = out[t]
            out[t] = if (v > 0) v / p else v * p
        }
        return out
    }

    fun probabilities(logits: FloatArray): DoubleArray {
        val t = params.temperature
        // float32 division as NumPy does it, then float64 probabilities
        val scaled = FloatArray(logits.size) { (logits[it] / t.toFloat()) }
        if (params.topK in 1 until scaled.size) {
            val kth = scaled.sortedDescending()[params.topK - 1]
            for (i in scaled.indices) if (scaled[i] < kth) scaled[i] = Float.NEGATIVE_INFINITY
        }
        val max = scaled.max()
        val probs = DoubleArray(scaled.size) { exp((scaled[it] - max).toDouble()) }
        val sum = probs.sum()
        for (i in probs.indices) probs[i] /= sum
        if (params.topP < 1.0) {
            val order = probs.indices.sortedByDescending { probs[it] } // stable: ties keep index order
            var cumulative = 0.0
            val keep = HashSet<Int>()
            for (i in order) {
                keep.add(i)
                cumulative += probs[i]
                if (cumulative >= params.topP) break
            }
            var kept = 0.0
            for (i in probs.indices) if (i in keep) kept += probs[i] else probs[i] = 0.0
            for (i in probs.indices) probs[i] /= kept
        }
        return probs
    }

    companion object {
        fun argmax(x: FloatArray): Int {
            var best = 0
            for (i in 1 until x.size) if (x[i] > x[best]) best = i
            return best
        }

        /** log-softmax in float64, as the SDK scores tokens. */
        fun logSoftmax(logits: FloatArray): DoubleArray {
            var m = Double.NEGATIVE_INFINITY
            for (v in logits) if (v > m) m = v.toDouble()
            var s = 0.0
            for (v in logits) s += exp(v - m)
            val lse = m + ln(s)
            return DoubleArray(logits.size) { logits[it] - lse }
        }
    }
}

/** Turns a growing token list into text pieces that are whole characters (sdk_python/tokenizer.py). */
class StreamDetokenizer(private val tokenizer: Tokenizer) {
    val tokens = ArrayList<Int>()
    private var prefix = 0
    private var read = 0

    fun add(token: Int): String {
        tokens.add(token)
        val prefixText = tokenizer.decode(tokens.subList(prefix, read).toIntArray())
        val text = tokenizer.decode(tokens.subList(prefix, tokens.size).toIntArray())
        if (text.length > prefixText.length && !text.endsWith("\uFFFD")) {
            prefix = read
            read = tokens.size
            return text.substring(prefixText.length)
        }
        return ""
    }

    fun flush(): String {
        val prefixText = tokenizer.decode(tokens.subList(prefix, read).toIntArray())
        val text = tokenizer.decode(tokens.subList(prefix, tokens.size).toIntArray())
        prefix = tokens.size
        read = tokens.size
        return if (text.length > prefixText.length) text.substring(prefixText.length) else ""
    }
}

/** Holds back text that could be the start of a stop string; reports where one completes. */
class StopMatcher(stops: List<String>) {
    private val stops = stops.filter { it.isNotEmpty() }
    private var pending = ""

    fun feed(text: String): Pair<String, Boolean> {
        pending += text
        for (s in stops) {
            val i = pending.indexOf(s)
            if (i >= 0) {
                val out = pending.substring(0, i)
                pending = ""
                return out to true
            }
        }
        var hold = 0
        for (s in stops) {
            for (k in minOf(s.length - 1, pending.length) downTo 1) {
                if (pending.endsWith(s.substring(0, k))) {
                    hold = maxOf(hold, k)
                    break
                }
            }
        }
        val out = pending.substring(0, pending.length - hold)
        pending = pending.substring(out.length)
        return out to false
    }

    fun flush(): String = pending.also { pending = "" }
}

data class GenerationStats(
    var promptTokens: Int = 0,
    var generatedTokens: Int = 0,
    var prefillMs: Double = 0.0,
    var decodeMs: Double = 0.0,
    var decodeRuntimeMs: Double = 0.0,
    var finishReason: String = "",
    val tokens: MutableList<Int> = ArrayList(),
) {
    val decodeTokensPerSecond: Double
        get() = if (decodeMs > 0 && generatedTokens > 1) (generatedTokens - 1) / (decodeMs / 1e3) else 0.0
}

/**
 * Streaming generation over any [Engine], as sdk_python/generation.py does it: reset, prefill,
 * then sample / decode token by token; stops at an end-of-sequence token, a stop string, the
 * token budget or the end of the context. [onText] receives whole-character pieces.
 */
class Generator(private val engine: Engine, private val tokenizer: Tokenizer, private val eosTokenIds: Set<Int>) {
    fun generate(
        promptIds: IntArray,
        maxNewTokens: Int = 256,
        sampling: SamplingParams = SamplingParams(),
        stop: List<String> = emptyList(),
        stats: GenerationStats = GenerationStats(),
        onText: (String) -> Unit = {},
    ): GenerationStats {
        if (maxNewTokens < 1) throw GenerationException("max_new_tokens must be >= 1, got $maxNewTokens")
        if (promptIds.isEmpty()) throw GenerationException("the prompt is empty")
        if (promptIds.size >= engine.maxContext) {
            throw GenerationException(
                "the prompt is ${promptIds.size} tokens; this bundle's context is ${engine.maxContext} (prompt and answer together)",
            )
        }
        val sampler = Sampler(sampling)
        val detok = StreamDetokenizer(tokenizer)
        val stopper = StopMatcher(stop)
        val history = promptIds.toMutableList()
        stats.promptTokens = promptIds.size
        engine.reset()
        val t0 = System.nanoTime()
        var logits = engine.prefill(promptIds)
        val t1 = System.nanoTime()
        stats.prefillMs = (t1 - t0) / 1e6
        val runtimeBefore = engine.runtimeMs
        stats.finishReason = "length"
        try {
            for (i in 0 until maxNewTokens) {
                val token = sampler.sample(logits, history)
                history.add(token)
                stats.tokens.add(token)
                stats.generatedTokens += 1
                if (token in eosTokenIds) {
                    stats.finishReason = "eos"
                    break
                }
                val (text, stopped) = stopper.feed(detok.add(token))
                if (text.isNotEmpty()) onText(text)
                if (stopped) {
                    stats.finishReason = "stop"
                    return stats
                }
                if (i + 1 == maxNewTokens) break
                if (engine.room < 1) {
                    stats.finishReason = "context"
                    break
                }
                logits = engine.decode(token)
            }
            val (text, stopped) = stopper.feed(detok.flush())
            if (stopped) stats.finishReason = "stop"
            val tail = if (stopped) text else text + stopper.flush()
            if (tail.isNotEmpty()) onText(tail)
            return stats
        } finally {
            stats.decodeMs = (System.nanoTime() - t1) / 1e6
            stats.decodeRuntimeMs = engine.runtimeMs - runtimeBefore
        }
    }

    fun generateText(promptIds: IntArray, maxNewTokens: Int, sampling: SamplingParams, stop: List<String>): Pair<String, GenerationStats> {
        val sb = StringBuilder()
        val stats = generate(promptIds, maxNewTokens, sampling, stop) { sb.append(it) }
        return sb.toString() to stats
    }
}
