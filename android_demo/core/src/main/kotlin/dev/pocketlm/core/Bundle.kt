package dev.pocketlm.core

import org.json.JSONException
import org.json.JSONObject
import java.io.File
import java.security.MessageDigest

open class PocketLMException(message: String) : Exception(message)

class BundleException(message: String) : PocketLMException(message)

/** The bundle schema this app reads (sdk_python/bundle.py SCHEMA_VERSION). */
const val SCHEMA_VERSION = 1

data class TokenizerSpec(
    val file: String,
    val bosTokenId: Int?,
    val eosTokenIds: Set<Int>,
    val addBosToken: Boolean,
    val hasChatTemplate: Boolean,
    val chatFormat: ChatFormat?,
)

data class RuntimeSpec(
    val backend: String,
    val delegate: String?,
    val program: String,
    val maxContext: Int,
    val maxPrefill: Int,
    val prefillLengths: List<Int>,
    /** runtime.methods' names: an ExecuTorch bundle with "prefill" runs prompts through it. */
    val methods: Set<String> = setOf("forward"),
)

/**
 * A pocketlm bundle as the apps read it: manifest.json checked (schema version, the fields the
 * app uses) and, unless told otherwise, every file's size and sha256 checked against it. The
 * messages are the Python SDK's (sdk_python/bundle.py), so a user sees the same words everywhere.
 */
class Bundle private constructor(val dir: File, val manifest: JSONObject) {
    val name: String = manifest.getString("name")
    val family: String = manifest.getJSONObject("model").getString("family")
    val parameters: Long = manifest.getJSONObject("model").optLong("parameters", 0L)
    val tokenizer: TokenizerSpec
    val runtime: RuntimeSpec

    init {
        val t = manifest.getJSONObject("tokenizer")
        val eos = t.getJSONArray("eos_token_ids")
        tokenizer = TokenizerSpec(
            file = t.getString("file"),
            bosTokenId = if (t.isNull("bos_token_id")) null else t.getInt("bos_token_id"),
            eosTokenIds = (0 until eos.length()).map { eos.getInt(it) }.toSet(),
            addBosToken = t.getBoolean("add_bos_token"),
            hasChatTemplate = !t.isNull("chat_template"),
            chatFormat = t.optJSONObject("chat_format")?.let(ChatFormat::fromJson),
        )
        val r = manifest.getJSONObject("runtime")
        val lengths = r.optJSONArray("prefill_lengths")
        runtime = RuntimeSpec(
            backend = r.getString("backend"),
            delegate = if (r.isNull("delegate")) null else r.optString("delegate"),
            program = r.getString("program"),
            maxContext = r.getInt("max_context"),
            maxPrefill = r.getInt("max_prefill"),
            prefillLengths = lengths?.let { a -> (0 until a.length()).map { a.getInt(it) } } ?: emptyList(),
            methods = r.optJSONObject("methods")?.keys()?.asSequence()?.toSet() ?: emptySet(),
        )
    }

    fun file(relative: String): File = File(dir, relative)

    /** The sha256 of the program file, as listed in the manifest (benchmark results name the exact program). */
    val programSha256: String get() = manifest.getJSONObject("files").getJSONObject(runtime.program).getString("sha256")

    /** Task presets written by the converter (manifest `tasks`); bundles without them are refused by the tasks. */
    val tasks: JSONObject? get() = manifest.optJSONObject("tasks")

    fun loadTokenizer(): Tokenizer = Tokenizer.fromFile(file(tokenizer.file))

    companion object {
        const val MANIFEST = "manifest.json"

        fun open(dir: File, verify: Boolean = true): Bundle {
            if (!dir.isDirectory) throw BundleException("$dir is not a bundle folder (no such directory)")
            val manifestFile = File(dir, MANIFEST)
            if (!manifestFile.isFile) throw BundleException("$dir is not a bundle: $MANIFEST is missing")
            val manifest = try {
                JSONObject(manifestFile.readText(Charsets.UTF_8))
            } catch (e: JSONException) {
                throw BundleException("$manifestFile is not valid JSON (${e.message})")
            }
            val version = manifest.opt("schema_version")
            if (version !is Int) throw BundleException("$manifestFile has no integer schema_version")
            if (version > SCHEMA_VERSION) {
                throw BundleException(
                    "$dir was written with bundle schema $version; this app reads up to $SCHEMA_VERSION (update the app)",
                )
            }
            val bundle = try {
                Bundle(dir, manifest)
            } catch (e: JSONException) {
                throw BundleException("$manifestFile does not follow the bundle schema: ${e.message}")
            }
            if (verify) bundle.verifyFiles()
            return bundle
        }

        fun sha256(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            file.inputStream().use { input ->
                val buffer = ByteArray(1 shl 20)
                while (true) {
                    val n = input.read(buffer)
                    if (n < 0) break
                    digest.update(buffer, 0, n)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }

    fun verifyFiles() {
        val listed = manifest.optJSONObject("files") ?: throw BundleException("$dir: the manifest lists no files")
        for (relative in listed.keys()) {
            val entry = listed.getJSONObject(relative)
            val f = File(dir, relative)
            if (!f.isFile) throw BundleException("bundle $dir is incomplete: $relative is missing")
            if (f.length() != entry.getLong("bytes") || sha256(f) != entry.getString("sha256")) {
                throw BundleException("bundle $dir failed its integrity check: $relative does not match its sha256")
            }
        }
        val present = dir.walkTopDown().filter { it.isFile }.map { it.relativeTo(dir).invariantSeparatorsPath }
            .filter { it != MANIFEST }.toSortedSet()
        val unlisted = present.filter { !listed.has(it) }
        if (unlisted.isNotEmpty()) {
            throw BundleException("bundle $dir holds files its manifest does not list: ${unlisted.joinToString(", ")}")
        }
    }
}
