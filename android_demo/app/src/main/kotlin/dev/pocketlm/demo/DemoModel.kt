package dev.pocketlm.demo

import android.content.Context
import dev.pocketlm.core.Bundle
import dev.pocketlm.core.HealthAssistant
import dev.pocketlm.core.Knowledge
import dev.pocketlm.core.LanguageModel
import dev.pocketlm.core.TaskPresets
import dev.pocketlm.core.TextPredictor
import java.io.File

/** A bundle opened for the screens: checked, loaded with its runtime, its task presets read from the manifest. */
class DemoModel private constructor(val model: LanguageModel, val presets: TaskPresets, val loadMs: Double, val threads: Int) : AutoCloseable {
    val bundle: Bundle get() = model.bundle

    val predictor: TextPredictor by lazy {
        val p = presets.predict
        TextPredictor(model, p.getInt("beam"), p.getInt("max_word_tokens"), p.getDouble("time_budget_ms"))
    }

    fun health(context: Context): HealthAssistant {
        val notes = context.assets.open("health_knowledge.md").bufferedReader().use { it.readText() }
        return HealthAssistant(presets.health, Knowledge.fromMarkdown(notes), model)
    }

    override fun close() = model.engine.close()

    companion object {
        fun load(dir: File, threads: Int = defaultThreads()): DemoModel {
            val t0 = System.nanoTime()
            val bundle = Bundle.open(dir) // schema checked, every file's sha256 verified
            val engine = Engines.open(bundle, threads)
            val model = LanguageModel(bundle, bundle.loadTokenizer(), engine)
            return DemoModel(model, TaskPresets.of(bundle), (System.nanoTime() - t0) / 1e6, threads)
        }

        /** Big cores only, as ExecuTorch's and LiteRT's own guides advise for LLM decode. */
        fun defaultThreads(): Int = maxOf(1, minOf(4, Runtime.getRuntime().availableProcessors() / 2))
    }
}
