package dev.pocketlm.core

import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.text.Normalizer

/**
 * A Hugging Face `tokenizer.json` BPE tokenizer: the byte-level kind (SmolLM2, Qwen, Llama 3) and
 * the SentencePiece-style kind with byte fallback (Gemma). Same pipeline as the `tokenizers`
 * library: added tokens split off first (leftmost, longest), then normalizer, pre-tokenizer,
 * BPE merges by rank, and the decoder chain. Anything this file does not implement is refused
 * when the tokenizer is loaded, never approximated; shared test vectors check it against the
 * Python `tokenizers` package on the real SmolLM2 and Gemma 3 tokenizers.
 */
class Tokenizer private constructor(
    private val vocab: Map<String, Int>,
    private val idToToken: Array<String?>,
    private val merges: Map<Long, Long>, // (left id, right id) -> (rank, merged id)
    private val added: Map<String, Int>,
    private val addedFirstChars: Set<Char>,
    private val addedMaxLength: Int,
    private val specialIds: Set<Int>,
    private val normalizer: ((String) -> String)?,
    private val preTokenizer: (String) -> List<String>,
    private val byteFallback: Boolean,
    private val unkId: Int?,
    private val fuseUnk: Boolean,
    private val ignoreMerges: Boolean,
    private val decoder: (List<String>) -> String,
) {
    val vocabSize: Int get() = idToToken.size

    fun tokenToId(token: String): Int? = added[token] ?: vocab[token]

    fun idToToken(id: Int): String? = idToToken.getOrNull(id)

    fun isSpecial(id: Int): Boolean = id in specialIds

    /** Token ids of [text]; added and special tokens written in the text map to their ids (no BOS added). */
    fun encode(text: String): IntArray {
        val ids = ArrayList<Int>()
        for ((piece, addedId) in splitAdded(text)) {
            if (addedId != null) {
                ids.add(addedId)
                continue
            }
            val normalized = normalizer?.invoke(piece) ?: piece
            for (word in preTokenizer(normalized)) {
                if (word.isNotEmpty()) bpe(word, ids)
            }
        }
        return ids.toIntArray()
    }

    fun decode(ids: IntArray, skipSpecialTokens: Boolean = true): String {
        val tokens = ArrayList<String>(ids.size)
        for (id in ids) {
            if (skipSpecialTokens && id in specialIds) continue
            tokens.add(idToToken.getOrNull(id) ?: continue)
        }
        return decoder(tokens)
    }

    private fun splitAdded(text: String): List<Pair<String, Int?>> {
        if (added.isEmpty()) return listOf(text to null)
        val out = ArrayList<Pair<String, Int?>>()
        var start = 0
        var i = 0
        while (i < text.length) {
            if (text[i] in addedFirstChars) {
                var matched: Int? = null
                var len = minOf(addedMaxLength, text.length - i)
                while (len > 0) {
                    matched = added[text.substring(i, i + len)]
                    if (matched != null) break
                    len--
                }
                if (matched != null) {
                    if (i > start) out.add(text.substring(start, i) to null)
                    out.add(text.substring(i, i + len) to matched)
                    i += len
                    start = i
                    continue
                }
            }
            i++
        }
        if (start < text.length) out.add(text.substring(start) to null)
        return out
    }

    private fun bpe(word: String, out: MutableList<Int>) {
        if (ignoreMerges) vocab[word]?.let { out.add(it); return }
        val symbols = ArrayList<Int>()
        var lastWasUnk = false
        var offset = 0
        while (offset < word.length) {
            val cp = word.codePointAt(offset)
            val ch = String(Character.toChars(cp))
            offset += Character.charCount(cp)
            val id = vocab[ch]
            if (id != null) {
                symbols.add(id)
                lastWasUnk = false
                continue
            }
            if (byteFallback) {
                val bytes = ch.toByteArray(Charsets.UTF_8).map { vocab["<0x%02X>".format(it.toInt() and 0xFF)] }
                if (bytes.all { it != null }) {
                    bytes.forEach { symbols.add(it!!) }
                    lastWasUnk = false
                    continue
                }
            }
            val unk = unkId ?: throw TokenizerException("the text has a character ($ch) this tokenizer cannot encode")
            if (!(fuseUnk && lastWasUnk)) symbols.add(unk)
            lastWasUnk = true
        }
        // Merge the lowest-ranked adjacent pair (leftmost first) until no pair has a merge.
        while (symbols.size > 1) {
            var best = -1
            var bestRank = Long.MAX_VALUE
            var bestId = 0
            for (j in 0 until symbols.size - 1) {
                val merge = merges[pairKey(symbols[j], symbols[j + 1])] ?: continue
                val rank = merge ushr 32
                if (rank < bestRank) {
                    bestRank = rank
                    best = j
                    bestId = (merge and 0xFFFFFFFFL).toInt()
                }
            }
            if (best < 0) break
            symbols[best] = bestId
            symbols.removeAt(best + 1)
        }
        out.addAll(symbols)
    }

    companion object {
        fun fromFile(file: File): Tokenizer {
            if (!file.isFile) throw TokenizerException("tokenizer file not found: $file")
            return fromJson(JSONObject(file.readText(Charsets.UTF_8)))
        }

        fun fromJson(json: JSONObject): Tokenizer {
            val model = json.getJSONObject("model")
            if (model.optString("type") != "BPE") {
                throw TokenizerException("only BPE tokenizers are supported (this one is ${model.optString("type")})")
            }
            for (key in listOf("continuing_subword_prefix", "end_of_word_suffix")) {
                if (!model.isNull(key) && model.optString(key).isNotEmpty()) {
                    throw TokenizerException("BPE option $key is not supported")
                }
            }
            if (!model.isNull("dropout") && model.optDouble("dropout", 0.0) > 0.0) {
                throw TokenizerException("BPE dropout is not supported")
            }
            val vocab = HashMap<String, Int>()
            val vocabJson = model.getJSONObject("vocab")
            var maxId = -1
            for (token in vocabJson.keys()) {
                val id = vocabJson.getInt(token)
                vocab[token] = id
                maxId = maxOf(maxId, id)
            }
            val addedJson = json.optJSONArray("added_tokens") ?: JSONArray()
            val added = HashMap<String, Int>()
            val special = HashSet<Int>()
            val hasNormalizer = !json.isNull("normalizer")
            for (i in 0 until addedJson.length()) {
                val t = addedJson.getJSONObject(i)
                for (flag in listOf("lstrip", "rstrip", "single_word")) {
                    if (t.optBoolean(flag)) throw TokenizerException("added token ${t.getString("content")}: $flag is not supported")
                }
                if (t.optBoolean("normalized") && hasNormalizer && !t.optBoolean("special")) {
                    throw TokenizerException("added token ${t.getString("content")}: matching after normalization is not supported")
                }
                added[t.getString("content")] = t.getInt("id")
                if (t.optBoolean("special")) special.add(t.getInt("id"))
                maxId = maxOf(maxId, t.getInt("id"))
            }
            val idToToken = arrayOfNulls<String>(maxId + 1)
            for ((token, id) in vocab) idToToken[id] = token
            for ((token, id) in added) idToToken[id] = token
            val merges = HashMap<Long, Long>()
            val mergesJson = model.optJSONArray("merges") ?: JSONArray()
            for (rank in 0 until mergesJson.length()) {
                val entry = mergesJson.get(rank)
                val (a, b) = when (entry) {
                    is JSONArray -> entry.getString(0) to entry.getString(1)
                    else -> entry.toString().split(" ", limit = 2).let { it[0] to it[1] }
                }
                val left = vocab[a] ?: continue
                val right = vocab[b] ?: continue
                val merged = vocab[a + b] ?: continue
                merges.putIfAbsent(pairKey(left, right), (rank.toLong() shl 32) or merged.toLong())
            }
            val unkToken = if (model.isNull("unk_token")) null else model.optString("unk_token")
            return Tokenizer(
                vocab = vocab,
                idToToken = idToToken,
                merges = merges,
                added = added,
                addedFirstChars = added.keys.filter { it.isNotEmpty() }.map { it[0] }.toSet(),
                addedMaxLength = added.keys.maxOfOrNull { it.length } ?: 0,
                specialIds = special,
                normalizer = if (hasNormalizer) normalizer(json.getJSONObject("normalizer")) else null,
                preTokenizer = if (json.isNull("pre_tokenizer")) { s -> listOf(s) } else preTokenizer(json.getJSONObject("pre_tokenizer")),
                byteFallback = model.optBoolean("byte_fallback"),
                unkId = unkToken?.let { vocab[it] ?: added[it] },
                fuseUnk = model.optBoolean("fuse_unk"),
                ignoreMerges = model.optBoolean("ignore_merges"),
                decoder = if (json.isNull("decoder")) { t -> t.joinToString("") } else decoder(json.getJSONObject("decoder")),
            )
        }

        private fun pairKey(left: Int, right: Int): Long = (left.toLong() shl 32) or (right.toLong() and 0xFFFFFFFFL)

        private fun pattern(spec: JSONObject): Regex = when {
            spec.has("String") -> Regex(Regex.escape(spec.getString("String")))
            spec.has("Regex") -> Regex("(?U)" + spec.getString("Regex")) // Unicode \s, \w as in Rust and Python
            else -> throw TokenizerException("unknown pattern $spec")
        }

        private fun normalizer(spec: JSONObject): (String) -> String = when (val type = spec.getString("type")) {
            "Sequence" -> {
                val steps = spec.getJSONArray("normalizers").let { a -> (0 until a.length()).map { normalizer(a.getJSONObject(it)) } }
                val f: (String) -> String = { s -> steps.fold(s) { acc, step -> step(acc) } }
                f
            }
            "Replace" -> {
                val p = pattern(spec.getJSONObject("pattern"))
                val content = spec.getString("content")
                val f: (String) -> String = { s -> p.replace(s, Regex.escapeReplacement(content)) }
                f
            }
            "Prepend" -> {
                val prefix = spec.getString("prepend")
                val f: (String) -> String = { s -> if (s.isEmpty()) s else prefix + s }
                f
            }
            "NFC" -> { s -> Normalizer.normalize(s, Normalizer.Form.NFC) }
            "NFKC" -> { s -> Normalizer.normalize(s, Normalizer.Form.NFKC) }
            "NFD" -> { s -> Normalizer.normalize(s, Normalizer.Form.NFD) }
            "NFKD" -> { s -> Normalizer.normalize(s, Normalizer.Form.NFKD) }
            else -> throw TokenizerException("normalizer $type is not supported")
        }

        // GPT-2's pattern, as the ByteLevel pre-tokenizer uses it.
        private val GPT2_SPLIT = Regex("""(?U)'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

        private fun split(text: String, p: Regex, behavior: String, invert: Boolean): List<String> {
            // Pieces are (start, end, isMatch); `invert` swaps which pieces count as matches.
            val pieces = ArrayList<Triple<Int, Int, Boolean>>()
            var last = 0
            for (m in p.findAll(text)) {
                if (m.range.isEmpty()) continue
                if (m.range.first > last) pieces.add(Triple(last, m.range.first, invert))
                pieces.add(Triple(m.range.first, m.range.last + 1, !invert))
                last = m.range.last + 1
            }
            if (last < text.length) pieces.add(Triple(last, text.length, invert))
            val out = ArrayList<String>()
            when (behavior) {
                "Isolated" -> pieces.forEach { out.add(text.substring(it.first, it.second)) }
                "Removed" -> pieces.filter { !it.third }.forEach { out.add(text.substring(it.first, it.second)) }
                "MergedWithPrevious" -> {
                    var current = StringBuilder()
                    for ((s, e, isMatch) in pieces) {
                        current.append(text, s, e)
                        if (isMatch) { out.add(current.toString()); current = StringBuilder() }
                    }
                    if (current.isNotEmpty()) out.add(current.toString())
                }
                "MergedWithNext" -> {
                    var current = StringBuilder()
                    for ((s, e, isMatch) in pieces) {
                        if (isMatch && current.isNotEmpty()) { out.add(current.toString()); current = StringBuilder() }
                        current.append(text, s, e)
                    }
                    if (current.isNotEmpty()) out.add(current.toString())
                }
                "Contiguous" -> {
                    var current = StringBuilder()
                    var currentIsMatch: Boolean? = null
                    for ((s, e, isMatch) in pieces) {
                        if (currentIsMatch != null && isMatch != currentIsMatch) { out.add(current.toString()); current = StringBuilder() }
                        current.append(text, s, e)
                        currentIsMatch = isMatch
                    }
                    if (current.isNotEmpty()) out.add(current.toString())
                }
                else -> throw TokenizerException("split behavior $behavior is not supported")
            }
            return out
        }

        private fun preTokenizer(spec: JSONObject): (String) -> List<String> = when (val type = spec.getString("type")) {
            "Sequence" -> {
                val steps = spec.getJSONArray("pretokenizers").let { a -> (0 until a.length()).map { preTokenizer(a.getJSONObject(it)) } }
                val f: (String) -> List<String> = { s -> steps.fold(listOf(s)) { pieces, step -> pieces.flatMap(step) } }
                f
            }
            "ByteLevel" -> {
                val prefixSpace = spec.optBoolean("add_prefix_space")
                val useRegex = spec.optBoolean("use_regex", true)
                val f: (String) -> List<String> = { s ->
                    val text = if (prefixSpace && !s.startsWith(" ")) " $s" else s
                    val words = if (useRegex) GPT2_SPLIT.findAll(text).map { it.value }.toList() else listOf(text)
                    words.map(ByteLevel::encode)
                }
                f
            }
            "Split" -> {
                val p = pattern(spec.getJSONObject("pattern"))
                val behavior = spec.getString("behavior")
                val invert = spec.optBoolean("invert")
                val f: (String) -> List<String> = { s -> split(s, p, behavior, invert) }
                f
            }
            "Digits" -> {
                val individual = spec.optBoolean("individual_digits")
                val p = if (individual) Regex("\\p{N}") else Regex("\\p{N}+")
                val f: (String) -> List<String> = { s -> split(s, p, "Isolated", false) }
                f
            }
            "Metaspace" -> {
                val replacement = spec.getString("replacement")
                val prepend = spec.optString("prepend_scheme", "always")
                // "first" prepends only at the start of the whole text, which this per-piece pipeline cannot tell.
                if (prepend !in setOf("always", "never")) throw TokenizerException("Metaspace prepend_scheme '$prepend' is not supported")
                if (!spec.optBoolean("split", true)) throw TokenizerException("Metaspace without split is not supported")
                val f: (String) -> List<String> = { s ->
                    var t = s.replace(" ", replacement)
                    if (prepend == "always" && !t.startsWith(replacement)) t = replacement + t
                    split(t, Regex(Regex.escape(replacement)), "MergedWithNext", false)
                }
                f
            }
            else -> throw TokenizerException("pre-tokenizer $type is not supported")
        }

        private fun decoder(spec: JSONObject): (List<String>) -> String {
            val steps = chain(spec)
            return { tokens -> steps.fold(tokens) { acc, step -> step(acc) }.joinToString("") }
        }

        // Each decoder step maps the token list to a new list, as `tokenizers`' decode_chain does.
        private fun chain(spec: JSONObject): List<(List<String>) -> List<String>> = when (val type = spec.getString("type")) {
            "Sequence" -> spec.getJSONArray("decoders").let { a -> (0 until a.length()).flatMap { chain(a.getJSONObject(it)) } }
            "ByteLevel" -> listOf { tokens -> listOf(ByteLevel.decode(tokens)) }
            "Replace" -> {
                val p = pattern(spec.getJSONObject("pattern"))
                val content = spec.getString("content")
                listOf { tokens -> tokens.map { p.replace(it, Regex.escapeReplacement(content)) } }
            }
            "ByteFallback" -> listOf(::byteFallback)
            "Fuse" -> listOf { tokens -> listOf(tokens.joinToString("")) }
            "Strip" -> {
                val content = spec.getString("content")
                val start = spec.optInt("start")
                val stop = spec.optInt("stop")
                listOf { tokens -> tokens.map { stripToken(it, content, start, stop) } }
            }
            "Metaspace" -> {
                val replacement = spec.getString("replacement")
                val prepend = spec.optString("prepend_scheme", "always")
                listOf { tokens ->
                    tokens.mapIndexed { i, t ->
                        val s = t.replace(replacement, " ")
                        if (i == 0 && prepend != "never" && s.startsWith(" ")) s.substring(1) else s
                    }
                }
            }
            else -> throw TokenizerException("decoder $type is not supported")
        }

        private fun stripToken(token: String, content: String, start: Int, stop: Int): String {
            var s = 0
            var e = token.length
            repeat(start) { if (token.startsWith(content, s) && s < e) s += content.length }
            repeat(stop) { if (e - content.length >= s && token.startsWith(content, e - content.length)) e -= content.length }
            return token.substring(s, e)
        }

        private val BYTE_TOKEN = Regex("^<0x([0-9A-Fa-f]{2})>$")

        private fun byteFallback(tokens: List<String>): List<String> {
            val out = ArrayList<String>()
            val pending = java.io.ByteArrayOutputStream()
            fun flush() {
                if (pending.size() == 0) return
                val bytes = pending.toByteArray()
                out.add(Utf8.decodeStrict(bytes) ?: "\uFFFD".repeat(bytes.size))
                pending.reset()
            }
            for (t in tokens) {
                val m = BYTE_TOKEN.matchEntire(t)
                if (m != null) {
                    pending.write(m.groupValues[1].toInt(16))
                } else {
                    flush()
                    out.add(t)
                }
            }
            flush()
            return out
        }
    }
}

class TokenizerException(message: String) : PocketLMException(message)

/** GPT-2's byte-to-character map: every byte gets a printable character, so BPE never sees raw bytes. */
internal object ByteLevel {
    private val byteToChar = CharArray(256)
    private val charToByte = HashMap<Char, Int>()

    init {
        var n = 0
        for (b in 0 until 256) {
            val printable = b in 33..126 || b in 161..172 || b in 174..255
            byteToChar[b] = if (printable) b.toChar() else (256 + n++).toChar()
            charToByte[byteToChar[b]] = b
        }
    }

    fun encode(text: String): String {
        val bytes = text.toByteArray(Charsets.UTF_8)
        val sb = StringBuilder(bytes.size)
        for (b in bytes) sb.append(byteToChar[b.toInt() and 0xFF])
        return sb.toString()
    }

    fun decode(tokens: List<String>): String {
        val out = java.io.ByteArrayOutputStream()
        for (t in tokens) {
            val mapped = t.map { charToByte[it] }
            if (mapped.all { it != null }) mapped.forEach { out.write(it!!) } else out.write(t.toByteArray(Charsets.UTF_8))
        }
        return Utf8.decodeLossy(out.toByteArray())
    }
}

internal object Utf8 {
    /** Invalid sequences become U+FFFD, one per maximal invalid subpart (Rust's from_utf8_lossy, Python's "replace"). */
    fun decodeLossy(bytes: ByteArray): String = String(bytes, Charsets.UTF_8)

    fun decodeStrict(bytes: ByteArray): String? = try {
        Charsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString()
    } catch (e: java.nio.charset.CharacterCodingException) {
        null
    }
}
