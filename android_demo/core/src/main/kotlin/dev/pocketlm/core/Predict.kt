package dev.pocketlm.core

import kotlin.math.exp
import kotlin.math.ln
import kotlin.math.max

data class Suggestion(val word: String, val logprob: Double)

data class Prediction(val partial: String, val suggestions: List<Suggestion>, val reusedTokens: Int, val newTokens: Int, val steps: Int) {
    val words: List<String> get() = suggestions.map { it.word }
}

/** What each token adds to a text and whether it starts, continues or ends a word (sdk_python/tasks/predict.py). */
class TokenTable(tokenizer: Tokenizer, specials: Set<Int>) {
    val texts: Array<String>
    val starts: BooleanArray
    val continues: BooleanArray
    val boundary: BooleanArray
    val special: BooleanArray
    private val idsByText = HashMap<String, MutableList<Int>>()

    init {
        val anchor = tokenizer.encode("a").take(1).toIntArray()
        val base = tokenizer.decode(anchor, skipSpecialTokens = false)
        val n = tokenizer.vocabSize
        texts = Array(n) { i ->
            val full = tokenizer.decode(anchor + i, skipSpecialTokens = false)
            if (full.startsWith(base)) full.substring(base.length) else "\uFFFD"
        }
        texts.forEachIndexed { i, t -> idsByText.getOrPut(t) { ArrayList() }.add(i) }
        starts = BooleanArray(n) { startsWord(texts[it]) }
        continues = BooleanArray(n) { texts[it].isNotEmpty() && texts[it].all(::isWordChar) }
        boundary = BooleanArray(n) { i ->
            val t = texts[i]
            i in specials || (t.isNotEmpty() && (t[0].isWhitespace() || (!isWordChar(t[0]) && t[0] != '\uFFFD')))
        }
        special = BooleanArray(n) { it in specials }
    }

    /** Tokens whose text starts with [rest], or is itself a start of [rest]. */
    fun consistentWith(rest: String): BooleanArray {
        val mask = BooleanArray(texts.size) { texts[it].startsWith(rest) }
        for (end in 1 until rest.length) idsByText[rest.substring(0, end)]?.forEach { mask[it] = true }
        return mask
    }

    companion object {
        fun isWordChar(c: Char): Boolean = c in 'a'..'z' || c in 'A'..'Z' || c == '\'' || c == '-' || c.code in 0xC0 until 0x250

        fun startsWord(t: String): Boolean = t.length >= 2 && t[0] == ' ' && t.substring(1).all(::isWordChar)
    }
}

/**
 * Keyboard-style next-word prediction, the SDK's algorithm: a small beam search over tokens that
 * form one word, scored when the model would end the word; the KV cache of the text before the word
 * is kept between calls, so typing one more character runs only the changed tail.
 */
class TextPredictor(
    private val model: LanguageModel,
    private val beam: Int,
    private val maxWordTokens: Int,
    private val timeBudgetMs: Double,
    private val minRatio: Double = 1e-3,
) {
    private val engine = model.engine
    private val table = TokenTable(model.tokenizer, model.bundle.tokenizer.eosTokenIds + listOfNotNull(model.bundle.tokenizer.bosTokenId))
    private var cached: List<Int> = emptyList()
    private var lastLogits: FloatArray? = null
    private var epoch = engine.epoch
    private val consistentMemo = HashMap<String, BooleanArray>()

    private class Candidate(val logprob: Double, val tokens: List<Int>, val text: String)

    private fun logitsAfter(tokens: List<Int>): Triple<FloatArray, Int, Int> {
        if (engine.epoch != epoch) {
            cached = emptyList(); lastLogits = null; epoch = engine.epoch
        }
        var common = 0
        while (common < minOf(cached.size, tokens.size) && cached[common] == tokens[common]) common++
        val last = lastLogits
        if (common == tokens.size && common == cached.size && last != null) return Triple(last, common, 0)
        common = minOf(common, tokens.size - 1, engine.position) // at least one token must run
        engine.rewind(common)
        val logits = engine.prefill(tokens.subList(common, tokens.size).toIntArray())
        cached = tokens.toList()
        lastLogits = logits
        return Triple(logits, common, tokens.size - common)
    }

    private fun branchLogits(baseLen: Int, baseLogits: FloatArray, tokens: List<Int>): FloatArray {
        if (tokens.isEmpty()) return baseLogits
        engine.rewind(baseLen)
        val logits = engine.prefill(tokens.toIntArray())
        cached = cached.take(baseLen)
        lastLogits = null // the cache now holds a branch, not the bare prefix
        return logits
    }

    fun predict(text: String, k: Int = 3): Prediction {
        if (k < 1) throw GenerationException("k must be >= 1, got $k")
        val deadline = System.nanoTime() + (timeBudgetMs * 1e6).toLong()
        var cut = text.length
        while (cut > 0 && TokenTable.isWordChar(text[cut - 1])) cut--
        val partial = text.substring(cut)
        val context = text.substring(0, cut).trimEnd()
        var prefix = if (context.isNotEmpty()) model.encode(context).toList() else emptyList()
        if (prefix.isEmpty()) {
            val bos = model.bundle.tokenizer.bosTokenId ?: throw GenerationException("this tokenizer has no BOS token to predict the first word from")
            prefix = listOf(bos)
        }
        if (prefix.size + maxWordTokens + 1 > engine.maxContext) {
            prefix = prefix.takeLast(engine.maxContext - maxWordTokens - 1)
            cached = emptyList(); lastLogits = null
        }
        val (baseLogits, reused, new) = logitsAfter(prefix)
        val baseLen = prefix.size
        val want = (if (context.isNotEmpty()) " " else "") + partial
        var frontier = listOf(Candidate(0.0, emptyList(), ""))
        val complete = LinkedHashMap<String, Double>()
        var steps = 0
        for (depth in 0..maxWordTokens) {
            val grown = ArrayList<Candidate>()
            for (cand in frontier) {
                if (System.nanoTime() > deadline && complete.isNotEmpty()) break
                if (cand.logprob <= kth(complete, k)) continue // bounds every word it can become
                val logits = branchLogits(baseLen, baseLogits, cand.tokens)
                if (cand.tokens.isNotEmpty()) steps++
                val logp = Sampler.logSoftmax(logits)
                for (i in logp.indices) if (table.special[i] && !table.boundary[i]) logp[i] = Double.NEGATIVE_INFINITY
                val word = ChatFormat.pyStrip(cand.text)
                if (cand.tokens.isNotEmpty() && word.isNotEmpty() && word.startsWith(partial)) {
                    val score = cand.logprob + logSumExp(logp, table.boundary)
                    if (score > (complete[word] ?: Double.NEGATIVE_INFINITY)) complete[word] = score
                }
                if (depth == maxWordTokens) continue
                val allowed = (if (cand.tokens.isEmpty() && context.isNotEmpty()) table.starts else table.continues).copyOf()
                if (cand.tokens.isEmpty() && context.isEmpty()) for (i in allowed.indices) allowed[i] = allowed[i] || table.continues[i]
                val consistent = consistent(cand.text, want)
                val scores = DoubleArray(logp.size) { if (allowed[it] && consistent[it]) logp[it] else Double.NEGATIVE_INFINITY }
                val top = scores.indices.sortedByDescending { scores[it] }.take(beam)
                for (t in top) {
                    if (scores[t].isFinite()) grown.add(Candidate(cand.logprob + scores[t], cand.tokens + t, cand.text + table.texts[t]))
                }
            }
            val kth = kth(complete, k)
            frontier = grown.sortedByDescending { it.logprob }.take(beam).filter { it.logprob > kth }
            if (frontier.isEmpty() || (System.nanoTime() > deadline && complete.isNotEmpty())) break
        }
        var best = complete.entries.sortedByDescending { it.value }.take(k)
        if (best.isNotEmpty()) {
            val floor = best[0].value + ln(minRatio)
            best = best.filter { it.value >= floor }
        }
        return Prediction(partial, best.map { Suggestion(it.key, it.value) }, reused, new, steps)
    }

    private fun kth(complete: Map<String, Double>, k: Int): Double =
        if (complete.size >= k) complete.values.sorted()[complete.size - k] else Double.NEGATIVE_INFINITY

    private fun consistent(text: String, want: String): BooleanArray {
        if (text.length >= want.length) return BooleanArray(table.texts.size) { true }
        val rest = want.substring(text.length)
        return consistentMemo.getOrPut(rest) { table.consistentWith(rest) }
    }

    private fun logSumExp(x: DoubleArray, mask: BooleanArray): Double {
        var m = Double.NEGATIVE_INFINITY
        for (i in x.indices) if (mask[i]) m = max(m, x[i])
        if (m == Double.NEGATIVE_INFINITY) return m
        var s = 0.0
        for (i in x.indices) if (mask[i]) s += exp(x[i] - m)
        return m + ln(s)
    }
}
