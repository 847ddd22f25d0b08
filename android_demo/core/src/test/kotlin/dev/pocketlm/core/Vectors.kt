package dev.pocketlm.core

import org.json.JSONArray
import org.json.JSONObject
import java.io.File

/** The shared test vectors the Python SDK wrote (tests/app_contract.py), in the folder POCKETLM_VECTORS names. */
object Vectors {
    val dir: File by lazy {
        val path = System.getenv("POCKETLM_VECTORS")
            ?: throw AssertionError("POCKETLM_VECTORS is not set: run these tests through `pytest tests/test_app_contract.py`")
        File(path).also { if (!it.isDirectory) throw AssertionError("POCKETLM_VECTORS=$path is not a folder") }
    }

    fun obj(name: String) = JSONObject(File(dir, name).readText())
    fun arr(name: String) = JSONArray(File(dir, name).readText())
}

fun JSONArray.objects(): List<JSONObject> = (0 until length()).map { getJSONObject(it) }
fun JSONArray.ints(): IntArray = IntArray(length()) { getInt(it) }
fun JSONArray.floats(): FloatArray = FloatArray(length()) { getDouble(it).toFloat() }
fun JSONArray.doubles(): DoubleArray = DoubleArray(length()) { getDouble(it) }
fun JSONObject.stringOrNull(key: String): String? = if (isNull(key)) null else getString(key)

fun messages(a: JSONArray) = a.objects().map { Message(it.getString("role"), it.getString("content")) }

/** The Python side's HashEngine (tests/app_contract.py): logits are a hash of every token at positions 0..p. */
class HashEngine(maxContext: Int, maxPrefill: Int, private val vocab: Int) : Engine(maxContext, maxPrefill) {
    private val cache = IntArray(maxContext)

    override fun forward(tokens: IntArray, start: Int): FloatArray {
        tokens.copyInto(cache, start)
        var h = 1469598103L
        for (i in 0 until start + tokens.size) h = (h * 1000003L + cache[i] + 1) % 2147483647L
        return FloatArray(vocab) { v -> (((h * 31 + v.toLong() * 7919) % 10007) / 1000.0 - 5.0).toFloat() }
    }
}

fun hashModel(bundlePath: String, maxContext: Int, maxPrefill: Int): LanguageModel {
    val bundle = Bundle.open(File(bundlePath), verify = false)
    val tokenizer = bundle.loadTokenizer()
    return LanguageModel(bundle, tokenizer, HashEngine(maxContext, maxPrefill, tokenizer.vocabSize))
}
