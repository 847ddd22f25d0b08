package dev.pocketlm.core

import org.json.JSONArray
import org.json.JSONObject
import java.util.Locale

class TaskException(message: String) : PocketLMException(message)

/** What a prompt is: chat messages (through the bundle's chat format) or plain text. */
sealed interface Prompt {
    data class Chat(val messages: List<Message>) : Prompt
    data class Plain(val text: String) : Prompt
}

/** A loaded bundle's model: tokenizer, chat format and engine, with the prompt encoding the SDK uses. */
class LanguageModel(val bundle: Bundle, val tokenizer: Tokenizer, val engine: Engine) {
    val generator = Generator(engine, tokenizer, bundle.tokenizer.eosTokenIds)

    /** Plain text, with BOS when the tokenizer wants one (sdk_python/tokenizer.py encode). */
    fun encode(text: String, addBos: Boolean = bundle.tokenizer.addBosToken): IntArray {
        val ids = tokenizer.encode(text)
        val bos = bundle.tokenizer.bosTokenId
        if (addBos && bos != null && (ids.isEmpty() || ids[0] != bos)) return intArrayOf(bos) + ids
        return ids
    }

    fun encode(prompt: Prompt): IntArray = when (prompt) {
        is Prompt.Plain -> encode(prompt.text)
        // The template writes the BOS it wants; adding another would shift the model off its training format.
        is Prompt.Chat -> encode(renderChat(prompt.messages), addBos = false)
    }

    fun renderChat(messages: List<Message>, addGenerationPrompt: Boolean = true): String {
        val format = bundle.tokenizer.chatFormat ?: throw GenerationException(
            if (bundle.tokenizer.hasChatTemplate) {
                "this bundle's chat template could not be written as plain strings (manifest tokenizer.chat_format " +
                    "is missing); re-convert it with a newer pocketlm, or use a plain prompt"
            } else {
                "this bundle's tokenizer has no chat template; use a plain prompt"
            },
        )
        return format.render(messages, addGenerationPrompt)
    }
}

/** The bundle's task presets (manifest `tasks`, written by the converter from sdk_python/tasks/presets.py). */
class TaskPresets(val json: JSONObject) {
    val chat: JSONObject get() = json.getJSONObject("chat")
    val predict: JSONObject get() = json.getJSONObject("predict")
    val translate: JSONObject get() = json.getJSONObject("translate")
    val health: JSONObject get() = json.getJSONObject("health")

    companion object {
        const val VERSION = 1

        fun of(bundle: Bundle): TaskPresets {
            val tasks = bundle.tasks ?: throw TaskException(
                "bundle ${bundle.name} has no task presets (manifest `tasks`); re-convert it with pocketlm >= 0.1",
            )
            val version = tasks.optInt("version", -1)
            if (version > VERSION) throw TaskException("the bundle's task presets are version $version; this app reads $VERSION")
            return TaskPresets(tasks)
        }
    }
}

internal fun JSONArray.strings(): List<String> = (0 until length()).map { getString(it) }

// ------------------------------------------------------------------------------------ translation

object Translation {
    private val NO_SPACE_SCRIPTS = setOf("ja", "zh", "th")

    /** Sentences of one line, by the preset's boundary rule and abbreviation list (sdk_python/tasks/translate.py). */
    fun splitSentences(text: String, preset: JSONObject): List<String> {
        val boundary = presetRegex(preset.getString("sentence_boundary"))
        val abbreviations = preset.getJSONArray("abbreviations").strings()
        val pieces = pySplit(boundary, text.trim()).filter { it.isNotBlank() }
        val sentences = ArrayList<String>()
        for (piece in pieces) {
            val last = sentences.lastOrNull()
            if (last != null && abbreviations.any { last.endsWith(" $it") || last == it }) {
                sentences[sentences.size - 1] = "$last ${piece.trim()}"
            } else {
                sentences.add(piece.trim())
            }
        }
        return sentences
    }

    fun buildPrompt(preset: JSONObject, text: String, source: String, target: String): Prompt {
        val names = preset.getJSONObject("languages")
        val src = names.getString(source)
        val tgt = names.getString(target)
        if (preset.getString("style") == "chat") {
            val instruction = preset.getString("instruction").replace("{source}", src).replace("{target}", tgt)
            return Prompt.Chat(listOf(Message("user", "$instruction\n\n$text")))
        }
        val lines = mutableListOf(preset.getString("few_shot_header").replace("{source}", src).replace("{target}", tgt), "")
        val examples = preset.getJSONArray("examples")
        for (i in 0 until examples.length()) {
            val ex = examples.getJSONObject(i)
            if (ex.has(source) && ex.has(target)) lines += listOf("$src: ${ex.getString(source)}", "$tgt: ${ex.getString(target)}", "")
        }
        lines += listOf("$src: $text", "$tgt:")
        return Prompt.Plain(lines.joinToString("\n"))
    }

    fun checkPair(preset: JSONObject, source: String, target: String) {
        val covered = preset.getJSONObject("languages")
        for (code in listOf(source, target)) {
            if (!covered.has(code)) {
                throw TaskException(
                    "this model does not cover language '$code' (its model card lists: ${covered.keys().asSequence().joinToString(", ")}); " +
                        "translation refused rather than guessed",
                )
            }
        }
        if (source == target) throw TaskException("source and target are both '$source'")
    }

    /** Translate [text] sentence by sentence; [onSentence] is called as each is done. */
    fun translate(
        model: LanguageModel,
        preset: JSONObject,
        text: String,
        source: String,
        target: String,
        onSentence: (String, String) -> Unit = { _, _ -> },
    ): String {
        checkPair(preset, source, target)
        val joiner = if (target in NO_SPACE_SCRIPTS) "" else " "
        val budget = preset.getJSONObject("max_new_tokens")
        val sampling = SamplingParams.fromJson(preset.getJSONObject("sampling"))
        val stop = preset.getJSONArray("stop").strings()
        return text.split("\n").joinToString("\n") { line ->
            splitSentences(line, preset).joinToString(joiner) { sentence ->
                val ids = model.encode(buildPrompt(preset, sentence, source, target))
                val limit = budget.getInt("per_source_token") * model.encode(sentence, addBos = false).size + budget.getInt("extra")
                val (out, _) = model.generator.generateText(ids, limit, sampling, stop)
                out.trim().also { onSentence(sentence, it) }
            }
        }
    }
}

/** A preset's pattern as Python's re reads it: \s, \w, \b over Unicode, case folding over Unicode. */
internal fun presetRegex(pattern: String, ignoreCase: Boolean = false): Regex =
    Regex("(?U)" + pattern, if (ignoreCase) setOf(RegexOption.IGNORE_CASE) else emptySet())

/** Python's re.split: the pieces between matches, empty ones kept. */
internal fun pySplit(p: Regex, text: String): List<String> {
    val out = ArrayList<String>()
    var last = 0
    for (m in p.findAll(text)) {
        out.add(text.substring(last, m.range.first))
        last = m.range.last + 1
    }
    out.add(text.substring(last))
    return out
}

// ------------------------------------------------------------------------------------ health

data class Passage(val title: String, val text: String, val score: Double = 0.0, val keywords: List<String> = emptyList())

data class HealthAnswer(
    val kind: String, // "emergency", "declined", "answer" or "no_knowledge"
    val text: String,
    val notice: String,
    val passages: List<Passage> = emptyList(),
    val rule: String? = null,
    val mode: String? = null,
) {
    override fun toString() = "$text\n\n$notice"
}

/** Words of a text as the health retrieval counts them: lower-case letters, no stop words, Porter2 stems. */
object HealthTerms {
    private val STOPWORDS = (
        "a an and are as at be been but by can could do does for from had has have how i if in into is it its " +
            "me my of on or our should so some than that the their them then there these they this to was we what " +
            "when where which who why will with would you your yours any about after before also am"
        ).split(" ").toSet()
    private val WORD = Regex("[a-z]+")

    fun terms(text: String): List<String> =
        WORD.findAll(text.lowercase(Locale.ROOT)).map { it.value }.filter { it !in STOPWORDS && it.length > 1 }
            .map(EnglishStemmer::stem).toList()
}

/** Passages of a markdown file (`## Title` sections), searched with BM25 (rank_bm25's BM25Okapi). */
class Knowledge(val passages: List<Passage>) {
    private val k1 = 1.5
    private val b = 0.75
    private val epsilon = 0.25
    private val docFreqs: List<Map<String, Int>>
    private val docLen: List<Int>
    private val avgdl: Double
    private val idf = HashMap<String, Double>()
    private val topics: List<Set<String>>

    init {
        if (passages.isEmpty()) throw TaskException("the knowledge file has no '## Title' sections")
        // The title counts twice: it names what the passage is about.
        val docs = passages.map { p -> HealthTerms.terms("${p.title} ${p.title} ${p.keywords.joinToString(" ")} ${p.text}") }
        docFreqs = docs.map { d -> d.groupingBy { it }.eachCount() }
        docLen = docs.map { it.size }
        avgdl = docLen.sum().toDouble() / docs.size
        val nd = LinkedHashMap<String, Int>()
        for (f in docFreqs) for (w in f.keys) nd[w] = (nd[w] ?: 0) + 1
        var idfSum = 0.0
        val negative = ArrayList<String>()
        for ((w, freq) in nd) {
            val v = kotlin.math.ln(docs.size - freq + 0.5) - kotlin.math.ln(freq + 0.5)
            idf[w] = v
            idfSum += v
            if (v < 0) negative.add(w)
        }
        val eps = epsilon * idfSum / idf.size
        for (w in negative) idf[w] = eps
        topics = passages.map { p -> HealthTerms.terms("${p.title} ${p.keywords.joinToString(" ")}").toSet() }
    }

    fun scores(terms: List<String>): DoubleArray {
        val score = DoubleArray(passages.size)
        for (q in terms) {
            val w = idf[q] ?: 0.0
            for (i in passages.indices) {
                val f = (docFreqs[i][q] ?: 0).toDouble()
                score[i] += w * (f * (k1 + 1) / (f + k1 * (1 - b + b * docLen[i] / avgdl)))
            }
        }
        return score
    }

    fun search(query: String, k: Int = 2, minScore: Double = 0.0): List<Passage> {
        val terms = HealthTerms.terms(query)
        if (terms.isEmpty()) return emptyList()
        val s = scores(terms)
        val named = terms.toSet()
        return passages.indices.filter { s[it] >= minScore && topics[it].any { t -> t in named } }
            .sortedBy { -s[it] }.take(k)
            .map { Passage(passages[it].title, passages[it].text, Math.round(s[it] * 1000) / 1000.0, passages[it].keywords) }
    }

    companion object {
        private val KEYWORDS = Regex("^Keywords:(.*)$", RegexOption.MULTILINE)
        private val SECTION = Regex("^## ", RegexOption.MULTILINE)

        fun fromMarkdown(text: String): Knowledge {
            val passages = ArrayList<Passage>()
            for (block in pySplit(SECTION, text).drop(1)) {
                val newline = block.indexOf('\n')
                val title = if (newline < 0) block else block.substring(0, newline)
                var body = if (newline < 0) "" else block.substring(newline + 1)
                var keywords = emptyList<String>()
                KEYWORDS.find(body)?.let { m ->
                    keywords = m.groupValues[1].split(",").map { it.trim() }.filter { it.isNotEmpty() }
                    body = body.substring(0, m.range.first) + body.substring(m.range.last + 1)
                }
                body = body.split(Regex("(?U)\\s+")).filter { it.isNotEmpty() }.joinToString(" ")
                if (body.isNotEmpty()) passages.add(Passage(title.trim(), body, keywords = keywords))
            }
            return Knowledge(passages)
        }
    }
}

/**
 * The health assistant of sdk_python/tasks/health.py: red flags answered with emergency guidance
 * before anything is generated, doses / prescriptions / diagnoses declined, otherwise an answer
 * from the local notes (extractive below 1B parameters, generated from the notes above), and the
 * not-a-diagnosis notice on every answer. Nothing is logged by the app.
 */
class HealthAssistant(private val preset: JSONObject, private val knowledge: Knowledge, private val model: LanguageModel? = null) {
    val mode: String = preset.getString("answer_mode")
    private val notice = preset.getString("notice")
    private val redFlags = rules("red_flags")
    private val declines = rules("declines")

    private fun rules(key: String): List<Pair<JSONObject, List<Regex>>> {
        val list = preset.getJSONArray(key)
        return (0 until list.length()).map { i ->
            val rule = list.getJSONObject(i)
            rule to rule.getJSONArray("patterns").strings().map { presetRegex(it, ignoreCase = true) }
        }
    }

    /** The rule that answers [question] without the model: ("emergency" | "declined", rule), or null. */
    fun triage(question: String): Pair<String, JSONObject>? {
        for ((kind, rules) in listOf("emergency" to redFlags, "declined" to declines)) {
            for ((rule, patterns) in rules) if (patterns.any { it.containsMatchIn(question) }) return kind to rule
        }
        return null
    }

    fun ask(question: String, onText: (String) -> Unit = {}): HealthAnswer {
        val q = question.trim()
        if (q.isEmpty()) throw TaskException("empty question")
        val hit = triage(q)
        val answer = when {
            hit != null && hit.first == "emergency" ->
                HealthAnswer("emergency", "${preset.getString("emergency")} ${hit.second.getString("advice")}", notice, rule = hit.second.getString("id"))
            hit != null -> HealthAnswer("declined", hit.second.getString("message"), notice, rule = hit.second.getString("id"))
            else -> {
                val retrieval = preset.getJSONObject("retrieval")
                val passages = knowledge.search(q, retrieval.getInt("top_k"), retrieval.getDouble("min_score"))
                when {
                    passages.isEmpty() -> HealthAnswer("no_knowledge", preset.getString("no_knowledge"), notice)
                    mode == "generate" -> HealthAnswer("answer", generate(q, passages, onText), notice, passages, mode = mode)
                    else -> HealthAnswer("answer", extractAnswer(q, passages), notice, passages, mode = mode)
                }
            }
        }
        if (answer.mode != "generate") onText(answer.text) // generated answers were streamed piece by piece
        return answer
    }

    fun buildPrompt(question: String, passages: List<Passage>): Prompt {
        // The question first, then the instruction and the notes (as the SDK does: measured on SmolLM2).
        val notes = passages.joinToString("\n") { it.text }
        val instruction = preset.getString("instruction")
        if (preset.getString("style") == "chat") return Prompt.Chat(listOf(Message("user", "$question\n\n$instruction\n\n$notes")))
        return Prompt.Plain("$instruction\n\n$notes\n\nQuestion: $question\nAnswer:")
    }

    private fun generate(question: String, passages: List<Passage>, onText: (String) -> Unit): String {
        val m = model ?: throw TaskException("answer mode 'generate' needs a model")
        val sb = StringBuilder()
        m.generator.generate(
            m.encode(buildPrompt(question, passages)), preset.getInt("max_new_tokens"),
            SamplingParams.fromJson(preset.getJSONObject("sampling")), preset.getJSONArray("stop").strings(),
        ) { sb.append(it); onText(it) }
        return sb.toString().trim()
    }

    companion object {
        private val SENTENCE_END = Regex("(?<=[.!?])\\s+")

        /** The best passage's sentences that share words with the question (its first when none does), at most [maxSentences]. */
        fun extractAnswer(question: String, passages: List<Passage>, maxSentences: Int = 3): String {
            val asked = HealthTerms.terms(question).toSet()
            val sentences = pySplit(SENTENCE_END, passages[0].text)
            val overlap = sentences.map { s -> HealthTerms.terms(s).toSet().count { it in asked } }
            val ranked = sentences.indices.sortedWith(compareBy({ -overlap[it] }, { it }))
            val keep = ranked.take(maxSentences).filter { overlap[it] > 0 }.sorted().ifEmpty { listOf(0) }
            return keep.joinToString(" ") { sentences[it] }
        }
    }
}
