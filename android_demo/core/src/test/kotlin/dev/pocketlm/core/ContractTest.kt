package dev.pocketlm.core

import org.json.JSONObject
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.io.File
import kotlin.math.abs
import kotlin.test.assertContains
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The app's logic against the Python SDK's answers on the same inputs (shared vectors). */
class ContractTest {
    @TestFactory
    fun bundles() = Vectors.arr("bundles.json").objects().map { case ->
        DynamicTest.dynamicTest(case.getString("name")) {
            val phrase = case.stringOrNull("error_contains")
            if (phrase == null) {
                val b = Bundle.open(File(case.getString("path")))
                assertEquals(SCHEMA_VERSION, b.manifest.getInt("schema_version"))
                assertNotNull(b.tokenizer.chatFormat, "a new bundle carries tokenizer.chat_format")
                assertTrue(b.programSha256.matches(Regex("[0-9a-f]{64}")))
            } else {
                val e = assertFailsWith<BundleException> { Bundle.open(File(case.getString("path"))) }
                assertContains(e.message!!, phrase)
            }
        }
    }

    @TestFactory
    fun tokenizers() = Vectors.arr("tokenizers.json").objects().flatMap { t ->
        val tokenizer by lazy { Tokenizer.fromFile(File(t.getString("file"))) }
        t.getJSONArray("cases").objects().mapIndexed { i, case ->
            DynamicTest.dynamicTest("${t.getString("name")} #$i ${case.getString("text").take(24).replace("\n", "\\n")}") {
                assertEquals(t.getInt("vocab_size"), tokenizer.vocabSize)
                val expected = case.getJSONArray("ids").ints()
                assertContentEquals(expected, tokenizer.encode(case.getString("text")))
                assertEquals(case.getString("decoded"), tokenizer.decode(expected))
                assertEquals(case.getString("decoded_with_special"), tokenizer.decode(expected, skipSpecialTokens = false))
            }
        } + DynamicTest.dynamicTest("${t.getString("name")} streaming") {
            val stream = t.getJSONObject("stream")
            val detok = StreamDetokenizer(tokenizer)
            val pieces = stream.getJSONArray("ids").ints().map { detok.add(it) } + detok.flush()
            assertEquals(stream.getJSONArray("pieces").let { a -> (0 until a.length()).map { a.getString(it) } }, pieces)
        }
    }

    @TestFactory
    fun chatFormats() = Vectors.arr("chat.json").objects().flatMap { t ->
        val format = ChatFormat.fromJson(t.getJSONObject("format"))
        t.getJSONArray("cases").objects().mapIndexed { i, case ->
            DynamicTest.dynamicTest("${t.getString("name")} #$i") {
                assertEquals(case.getString("expected"), format.render(messages(case.getJSONArray("messages")), case.getBoolean("add_generation_prompt")))
            }
        } + t.getJSONArray("errors").objects().map { case ->
            DynamicTest.dynamicTest("${t.getString("name")} refuses: ${case.getString("error_contains")}") {
                val e = assertFailsWith<GenerationException> { format.render(messages(case.getJSONArray("messages"))) }
                assertContains(e.message!!, case.getString("error_contains"))
            }
        }
    }

    @Test
    fun sampling() {
        for (case in Vectors.arr("sampling.json").objects()) {
            val p = case.getJSONObject("params")
            val sampler = Sampler(SamplingParams(p.getDouble("temperature"), p.getInt("top_k"), p.getDouble("top_p"), p.getDouble("repetition_penalty"), seed = 1))
            val history = case.getJSONArray("history").ints().toList()
            val penalized = sampler.penalized(case.getJSONArray("logits").floats(), history)
            assertContentEquals(case.getJSONArray("penalized").floats(), penalized)
            if (p.getDouble("temperature") == 0.0) {
                assertEquals(case.getInt("greedy"), sampler.sample(case.getJSONArray("logits").floats(), history))
            } else {
                val expected = case.getJSONArray("probs").doubles()
                val got = sampler.probabilities(penalized)
                for (i in expected.indices) assertTrue(abs(expected[i] - got[i]) < 1e-5, "prob[$i]: ${expected[i]} vs ${got[i]}")
                repeat(200) { val t = sampler.sample(case.getJSONArray("logits").floats(), history); assertTrue(expected[t] > 0, "sampled token $t has probability 0") }
            }
        }
    }

    @Test
    fun stopStrings() {
        for (case in Vectors.arr("stop.json").objects()) {
            val stops = case.getJSONArray("stops").let { a -> (0 until a.length()).map { a.getString(it) } }
            val m = StopMatcher(stops)
            val outputs = case.getJSONArray("outputs").let { a -> (0 until a.length()).map { a.getJSONArray(it) } }
            val pieces = case.getJSONArray("pieces")
            for ((i, expected) in outputs.withIndex()) {
                val (text, stopped) = m.feed(pieces.getString(i))
                assertEquals(expected.getString(0), text)
                assertEquals(expected.getBoolean(1), stopped)
            }
            assertEquals(case.getString("flush"), m.flush())
        }
    }

    @Test
    fun generation() {
        val g = Vectors.obj("generation.json")
        val model = hashModel(g.getString("bundle"), g.getInt("max_context"), g.getInt("max_prefill"))
        for (case in g.getJSONArray("cases").objects()) {
            val stop = case.getJSONArray("stop").let { a -> (0 until a.length()).map { a.getString(it) } }
            val sb = StringBuilder()
            val stats = model.generator.generate(
                case.getJSONArray("prompt_ids").ints(), case.getInt("max_new_tokens"),
                SamplingParams(repetitionPenalty = case.getDouble("repetition_penalty")), stop,
            ) { sb.append(it) }
            assertEquals(case.getString("text"), sb.toString())
            assertContentEquals(case.getJSONArray("tokens").ints(), stats.tokens.toIntArray())
            assertEquals(case.getString("finish_reason"), stats.finishReason)
        }
    }

    @Test
    fun prediction() {
        val p = Vectors.obj("predict.json")
        val model = hashModel(p.getString("bundle"), p.getInt("max_context"), p.getInt("max_prefill"))
        val predictor = TextPredictor(model, p.getInt("beam"), p.getInt("max_word_tokens"), timeBudgetMs = 1e12)
        for (case in p.getJSONArray("cases").objects()) {
            val got = predictor.predict(case.getString("text"), 3)
            val where = "predict(${case.getString("text")})"
            assertEquals(case.getString("partial"), got.partial, where)
            assertEquals(case.getJSONArray("words").let { a -> (0 until a.length()).map { a.getString(it) } }, got.words, where)
            val logprobs = case.getJSONArray("logprobs").doubles()
            got.suggestions.forEachIndexed { i, s -> assertTrue(abs(s.logprob - logprobs[i]) < 1e-9, "$where logprob") }
            assertEquals(case.getInt("reused"), got.reusedTokens, "$where reused")
            assertEquals(case.getInt("new"), got.newTokens, "$where new")
            assertEquals(case.getInt("steps"), got.steps, "$where steps")
        }
    }

    @Test
    fun translation() {
        for (t in Vectors.arr("translate.json").objects()) {
            val preset = t.getJSONObject("preset")
            for (case in t.getJSONArray("cases").objects()) {
                val sentences = Translation.splitSentences(case.getString("text"), preset)
                assertEquals(case.getJSONArray("sentences").let { a -> (0 until a.length()).map { a.getString(it) } }, sentences)
                val prompt = Translation.buildPrompt(preset, sentences[0], case.getString("source"), case.getString("target"))
                val expected = case.get("prompt")
                when (prompt) {
                    is Prompt.Plain -> assertEquals(expected as String, prompt.text)
                    is Prompt.Chat -> assertEquals(messages(expected as org.json.JSONArray), prompt.messages)
                }
            }
            for (case in t.getJSONArray("refused").objects()) {
                val e = assertFailsWith<TaskException> { Translation.checkPair(preset, case.getString("source"), case.getString("target")) }
                assertContains(e.message!!, case.getString("error_contains"))
            }
        }
    }

    @Test
    fun health() {
        val h = Vectors.obj("health.json")
        val knowledge = Knowledge.fromMarkdown(h.getString("knowledge"))
        val assistant = HealthAssistant(h.getJSONObject("preset"), knowledge)
        assertEquals("extractive", assistant.mode)
        for (case in h.getJSONArray("cases").objects()) {
            val q = case.getString("question")
            if (case.has("error")) {
                val e = assertFailsWith<TaskException> { assistant.ask(q) }
                assertEquals(case.getString("error"), e.message)
                continue
            }
            val a = assistant.ask(q)
            assertEquals(case.getString("kind"), a.kind, q)
            assertEquals(case.stringOrNull("rule"), a.rule, q)
            assertEquals(case.getString("text"), a.text, q)
            assertEquals(case.getString("notice"), a.notice, q)
            assertEquals(case.getJSONArray("passages").let { arr -> (0 until arr.length()).map { arr.getString(it) } }, a.passages.map { it.title }, q)
            val scores = case.getJSONArray("scores").doubles()
            a.passages.forEachIndexed { i, p -> assertTrue(abs(p.score - scores[i]) < 1.1e-3, "$q score") }
        }
        val question = h.getString("prompt_question")
        val prompt = assistant.buildPrompt(question, knowledge.search(question, 2, 1.0))
        assertEquals(messages(h.getJSONArray("prompt")), (prompt as Prompt.Chat).messages)
    }

    @Test
    fun stems() {
        val s = Vectors.obj("stems.json")
        val stems = s.getJSONObject("stems")
        val wrong = stems.keys().asSequence().filter { EnglishStemmer.stem(it) != stems.getString(it) }
            .map { "$it -> ${EnglishStemmer.stem(it)} (Snowball: ${stems.getString(it)})" }.toList()
        assertTrue(wrong.isEmpty(), "${wrong.size} of ${stems.length()} words stem differently: ${wrong.take(20)}")
        for (case in s.getJSONArray("terms").objects()) {
            assertEquals(case.getJSONArray("terms").let { a -> (0 until a.length()).map { a.getString(it) } }, HealthTerms.terms(case.getString("text")))
        }
    }

    @Test
    fun benchmarkSettings() {
        for (case in Vectors.arr("benchmark_settings.json").objects()) {
            val extras = case.getJSONObject("extras").let { o -> o.keys().asSequence().associateWith { o.getString(it) } }
            if (case.has("error_contains")) {
                val e = assertFailsWith<BenchmarkException> { BenchmarkSettings.parse(extras) }
                assertContains(e.message!!, case.getString("error_contains"))
                continue
            }
            val want = case.getJSONObject("expect")
            val got = BenchmarkSettings.parse(extras)
            assertEquals(want.getString("bundle"), got.bundle)
            assertEquals(want.getString("result"), got.result)
            assertEquals(want.getJSONArray("prompt_lengths").ints().toList(), got.promptLengths)
            assertEquals(want.getInt("gen"), got.gen)
            assertEquals(want.getInt("runs"), got.runs)
            assertEquals(want.getInt("warmup"), got.warmup)
            assertEquals(if (want.isNull("threads")) null else want.getInt("threads"), got.threads)
        }
    }

    /** Benchmark mode end to end on the hash engine; the Python test then checks the file against the schema and folds it. */
    @Test
    fun benchmarkRunWritesResult() {
        val b = Vectors.obj("benchmark_run.json")
        val model = hashModel(b.getString("bundle"), 64, 16)
        val settings = BenchmarkSettings.parse(mapOf("bundle" to b.getString("bundle"), "result" to b.getString("result"), "prompt_lengths" to "8,20", "gen" to "4", "runs" to "3", "warmup" to "1"))
        val memory = MemorySampler(intervalMs = 5)
        val device = DeviceInfo("android", "jvm-test", "JVM ${System.getProperty("java.version")}", System.getProperty("os.name"), System.getProperty("os.arch"), Runtime.getRuntime().availableProcessors())
        val result = Benchmark.run(settings, model, 12.5, device, 1, mapOf("pocketlm-demo" to "test"), b.getString("prompt_text"), memory)
        assertEquals(6, result.getJSONArray("runs").length())
        assertEquals(20, result.getJSONArray("runs").getJSONObject(5).getInt("prompt_tokens"))
        Benchmark.write(result, File(settings.result))
        assertEquals(result.toString(), JSONObject(File(settings.result).readText()).toString())
        val tooLong = settings.copy(promptLengths = listOf(62))
        val e = assertFailsWith<BenchmarkException> { Benchmark.run(tooLong, model, 1.0, device, 1, emptyMap(), "x", MemorySampler()) }
        assertContains(e.message!!, "exceed this bundle's 64-token context")
    }

    @Test
    fun engineChunksAndChecksRoom() {
        val engine = HashEngine(10, 4, 50)
        engine.prefill(IntArray(9) { it })
        assertEquals(9, engine.position)
        val e = assertFailsWith<GenerationException> { engine.prefill(intArrayOf(1, 2)) }
        assertContains(e.message!!, "2 more tokens do not fit")
        engine.rewind(3)
        assertEquals(3, engine.position)
        assertNull(assertFailsWith<GenerationException> { engine.rewind(5) }.cause)
    }
}
