package dev.pocketlm.demo.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateListOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.pocketlm.core.Message
import dev.pocketlm.core.PocketLMException
import dev.pocketlm.core.Prompt
import dev.pocketlm.core.SamplingParams
import dev.pocketlm.demo.DemoModel
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Streaming chat through the bundle's chat format and the `chat` preset (system prompt, budget, sampling, stops). */
@Composable
fun ChatScreen(demo: DemoModel) {
    val preset = demo.presets.chat
    val history = remember { mutableStateListOf<Message>() }
    var input by remember { mutableStateOf("") }
    var streaming by remember { mutableStateOf("") }
    var busy by remember { mutableStateOf(false) }
    var info by remember { mutableStateOf("") }
    val scope = rememberCoroutineScope()

    Column(Modifier.padding(8.dp)) {
        LazyColumn(Modifier.weight(1f).fillMaxWidth()) {
            items(history) { m -> Text("${m.role}: ${m.content}", Modifier.padding(4.dp)) }
            if (streaming.isNotEmpty()) item { Text("assistant: $streaming", Modifier.padding(4.dp)) }
        }
        Text(info)
        Row {
            OutlinedTextField(input, { input = it }, Modifier.weight(1f), label = { Text("Message") })
            Button(enabled = !busy && input.isNotBlank(), onClick = {
                history.add(Message("user", input.trim()))
                input = ""
                busy = true
                scope.launch {
                    val messages = listOfNotNull(preset.optString("system").takeIf { !preset.isNull("system") && it.isNotEmpty() }
                        ?.let { Message("system", it) }) + history
                    val answer = withContext(Dispatchers.Default) {
                        try {
                            val ids = demo.model.encode(Prompt.Chat(messages))
                            val stop = preset.getJSONArray("stop").let { a -> (0 until a.length()).map { a.getString(it) } }
                            val sb = StringBuilder()
                            val stats = demo.model.generator.generate(
                                ids, preset.getInt("max_new_tokens"), SamplingParams.fromJson(preset.getJSONObject("sampling")), stop,
                            ) { piece -> sb.append(piece); scope.launch(Dispatchers.Main) { streaming = sb.toString() } }
                            info = "${stats.generatedTokens} tokens, %.1f tok/s decode".format(stats.decodeTokensPerSecond)
                            sb.toString().trim()
                        } catch (e: PocketLMException) {
                            "(${e.message})"
                        }
                    }
                    streaming = ""
                    history.add(Message("assistant", answer))
                    busy = false
                }
            }) { Text("Send") }
        }
    }
}
