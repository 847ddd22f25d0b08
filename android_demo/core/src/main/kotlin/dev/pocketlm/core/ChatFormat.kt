package dev.pocketlm.core

import org.json.JSONObject

data class Message(val role: String, val content: String)

/**
 * The bundle's chat template as plain strings (manifest `tokenizer.chat_format`), rendered as
 * sdk_python/chat_format.py renders it. The converter wrote it only after checking that it renders
 * exactly like the Jinja template; a bundle without it has no chat here.
 */
class ChatFormat(
    private val start: String,
    private val defaultSystem: String?,
    private val systemStyle: String,
    private val systemSeparator: String,
    private val roles: Map<String, Pair<String, String>>,
    private val generationPrompt: String,
    private val trimContent: Boolean,
) {
    fun render(messages: List<Message>, addGenerationPrompt: Boolean = true): String {
        var list = messages.toMutableList()
        for (m in list) {
            if (m.role !in ROLES) throw GenerationException("chat messages must have a role (system, user, assistant) and content")
        }
        var hasSystem = list.isNotEmpty() && list[0].role == "system"
        if (list.drop(1).any { it.role == "system" }) throw GenerationException("a system message may only come first")
        if (hasSystem && systemStyle == "none") throw GenerationException("this model's chat template has no system role")
        if (!hasSystem && defaultSystem != null) {
            list.add(0, Message("system", defaultSystem))
            hasSystem = true
        }
        if (hasSystem && systemStyle == "merged") {
            val rest = list.drop(1)
            if (rest.isEmpty() || rest[0].role != "user") {
                throw GenerationException("this model's template needs a user message after the system message")
            }
            val first = if (trimContent) pyStrip(rest[0].content) else rest[0].content
            list = (listOf(Message("user", list[0].content + systemSeparator + first)) + rest.drop(1)).toMutableList()
        }
        val sb = StringBuilder(start)
        for (m in list) {
            val (open, close) = roles.getValue(m.role)
            sb.append(open).append(if (trimContent) pyStrip(m.content) else m.content).append(close)
        }
        if (addGenerationPrompt) sb.append(generationPrompt)
        return sb.toString()
    }

    companion object {
        val ROLES = setOf("system", "user", "assistant")

        fun fromJson(json: JSONObject): ChatFormat {
            val roles = HashMap<String, Pair<String, String>>()
            val r = json.getJSONObject("roles")
            for (role in r.keys()) {
                val pair = r.getJSONArray(role)
                roles[role] = pair.getString(0) to pair.getString(1)
            }
            return ChatFormat(
                start = json.getString("start"),
                defaultSystem = if (json.isNull("default_system")) null else json.getString("default_system"),
                systemStyle = json.getString("system_style"),
                systemSeparator = json.optString("system_separator", ""),
                roles = roles,
                generationPrompt = json.getString("generation_prompt"),
                trimContent = json.optBoolean("trim_content"),
            )
        }

        /** Python's str.strip(): Unicode whitespace at both ends. */
        fun pyStrip(s: String): String = s.trim { Character.isWhitespace(it) || Character.isSpaceChar(it) }
    }
}
