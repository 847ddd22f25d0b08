package dev.pocketlm.demo

import dev.pocketlm.core.Bundle
import dev.pocketlm.core.BundleException
import dev.pocketlm.core.Engine
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.tensorflow.lite.Interpreter
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * One entry per runtime a bundle can name (manifest runtime.backend), as the SDK's engine registry:
 * adding a runtime is adding a line here and a class below.
 */
object Engines {
    private val factories: Map<String, (Bundle, Int) -> Engine> = mapOf(
        "executorch" to ::ExecuTorchEngine,
        "litert" to ::LiteRtEngine,
    )

    fun open(bundle: Bundle, threads: Int): Engine {
        val runtime = bundle.runtime
        if (runtime.backend == "coreml" || runtime.delegate == "coreml" || runtime.delegate == "mps") {
            throw BundleException("this bundle runs on Apple devices (${runtime.backend}/${runtime.delegate}); use the iOS app")
        }
        val factory = factories[runtime.backend]
            ?: throw BundleException("this app cannot run '${runtime.backend}' bundles (it runs: ${factories.keys.joinToString()})")
        return factory(bundle, threads)
    }

    val versions: Map<String, String> = mapOf(
        "executorch-android" to BuildConfigVersions.EXECUTORCH,
        "litert" to BuildConfigVersions.LITERT,
        "pocketlm-demo" to BuildConfigVersions.APP,
    )
}

/** The versions in gradle/libs.versions.toml, for benchmark results (kept in step by hand: three strings). */
object BuildConfigVersions {
    const val EXECUTORCH = "1.5.1"
    const val LITERT = "2.3.0"
    const val APP = "0.1.0"
}

/**
 * A pocketlm .pte through ExecuTorch's Module: forward(tokens [1, T] int64, input_pos [1] int64) →
 * logits [1, vocab] (manifest runtime.methods.forward). The KV cache lives inside the program
 * (mutable buffers updated by llama::update_cache), so nothing but tokens and logits crosses JNI.
 * A bundle that lists "prefill" (attention in XNNPACK, 2x faster on long prompts) gets its prompt
 * chunks there: prefill(tokens [1, T], kv_positions [start + T]) shares forward's cache.
 */
class ExecuTorchEngine(bundle: Bundle, threads: Int) : Engine(bundle.runtime.maxContext, bundle.runtime.maxPrefill) {
    private val module: Module = Module.load(bundle.file(bundle.runtime.program).absolutePath, Module.LOAD_MODE_MMAP, threads)
    private val hasPrefill = "prefill" in bundle.runtime.methods
    private val startPosition = LongArray(1)
    private val positionShape = longArrayOf(1)

    override fun forward(tokens: IntArray, start: Int): FloatArray {
        val ids = EValue.from(Tensor.fromBlob(LongArray(tokens.size) { tokens[it].toLong() }, longArrayOf(1, tokens.size.toLong())))
        val t0 = System.nanoTime()
        val out = if (tokens.size > 1 && hasPrefill) {
            val keys = start + tokens.size
            module.execute("prefill", ids, EValue.from(Tensor.fromBlob(LongArray(keys) { it.toLong() }, longArrayOf(keys.toLong()))))
        } else {
            startPosition[0] = start.toLong()
            module.forward(ids, EValue.from(Tensor.fromBlob(startPosition, positionShape)))
        }
        runtimeMs += (System.nanoTime() - t0) / 1e6
        return out[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/**
 * A pocketlm .tflite through LiteRT's Interpreter, as sdk_python/engines/litert_engine.py runs it:
 * signatures prefill_<P> (no logits) and decode, each taking tokens, input_pos, an additive mask
 * [1, 1, S, C] and the kv_cache_* tensors, returning the updated cache. A prompt's last token is
 * decoded, the rest prefilled in chunks padded to the next signature length (the mask hides the
 * padding). The cache is two sets of direct buffers used in turn, so no cache bytes are copied.
 */
class LiteRtEngine(bundle: Bundle, threads: Int) : Engine(bundle.runtime.maxContext, bundle.runtime.maxPrefill) {
    private val interpreter = Interpreter(bundle.file(bundle.runtime.program), Interpreter.Options().setNumThreads(threads))
    private val prefillLengths = bundle.runtime.prefillLengths.sorted()
    private val cacheNames = interpreter.getSignatureInputs("decode").filter { it.startsWith("kv_cache_") }
    private var cacheIn: Map<String, ByteBuffer>
    private var cacheOut: Map<String, ByteBuffer>
    private val vocab = bundle.manifest.getJSONObject("model").getJSONObject("shape").getInt("vocab_size")
    private val logits = ByteBuffer.allocateDirect(4 * vocab).order(ByteOrder.nativeOrder())

    init {
        if (cacheNames.isEmpty()) throw BundleException("the LiteRT program's decode signature has no kv_cache_* inputs")
        fun buffers() = cacheNames.associateWith { name ->
            ByteBuffer.allocateDirect(interpreter.getInputTensorFromSignature(name, "decode").numBytes()).order(ByteOrder.nativeOrder())
        }
        cacheIn = buffers()
        cacheOut = buffers()
    }

    private fun run(signature: String, tokens: IntArray, start: Int, length: Int, wantLogits: Boolean) {
        val tokenBuf = ByteBuffer.allocateDirect(4 * length).order(ByteOrder.nativeOrder())
        val posBuf = ByteBuffer.allocateDirect(4 * length).order(ByteOrder.nativeOrder())
        val maskBuf = ByteBuffer.allocateDirect(4 * length * maxContext).order(ByteOrder.nativeOrder())
        for (i in 0 until length) {
            tokenBuf.putInt(if (i < tokens.size) tokens[i] else 0)
            posBuf.putInt(start + i)
            for (k in 0 until maxContext) maskBuf.putFloat(if (k <= start + i) 0f else -Float.MAX_VALUE)
        }
        val inputs = HashMap<String, Any>(cacheIn)
        inputs["tokens"] = tokenBuf.rewind()
        inputs["input_pos"] = posBuf.rewind()
        inputs["mask"] = maskBuf.rewind()
        val outputs = HashMap<String, Any>(cacheOut)
        if (wantLogits) outputs["logits"] = logits.rewind()
        val t0 = System.nanoTime()
        interpreter.runSignature(inputs, outputs, signature)
        runtimeMs += (System.nanoTime() - t0) / 1e6
        cacheIn = cacheOut.also { cacheOut = cacheIn }
    }

    override fun forward(tokens: IntArray, start: Int): FloatArray {
        var pos = start
        var i = 0
        while (tokens.size - i > 1) { // all but the last token: prefill signatures, padded up
            val n = minOf(tokens.size - 1 - i, prefillLengths.last())
            val length = prefillLengths.first { it >= n }
            run("prefill_$length", tokens.copyOfRange(i, i + n), pos, length, wantLogits = false)
            pos += n
            i += n
        }
        run("decode", intArrayOf(tokens.last()), pos, 1, wantLogits = true)
        logits.rewind()
        return FloatArray(vocab).also { logits.asFloatBuffer().get(it) }
    }

    override fun close() = interpreter.close()
}
