package dev.pocketlm.demo.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.AssistChip
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.pocketlm.core.PocketLMException
import dev.pocketlm.demo.DemoModel
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** Keyboard-style prediction: suggestion chips update as you type; tapping one completes the word. */
@Composable
fun PredictScreen(demo: DemoModel) {
    var text by remember { mutableStateOf("") }
    var words by remember { mutableStateOf(listOf<String>()) }
    var info by remember { mutableStateOf("") }
    val k = demo.presets.predict.getInt("k")

    LaunchedEffect(text) { // restarts on every keystroke; the predictor reuses the cached prefix
        val result = withContext(Dispatchers.Default) {
            try {
                demo.predictor.predict(text, k)
            } catch (e: PocketLMException) {
                info = e.message ?: ""
                null
            }
        }
        if (result != null) {
            words = result.words
            info = "reused ${result.reusedTokens} cached tokens, ran ${result.newTokens} + ${result.steps} steps"
        }
    }
    Column(Modifier.padding(8.dp)) {
        OutlinedTextField(text, { text = it }, Modifier.fillMaxWidth(), label = { Text("Type") })
        Row {
            words.forEach { w ->
                AssistChip(onClick = {
                    val cut = text.length - text.takeLastWhile { dev.pocketlm.core.TokenTable.isWordChar(it) }.length
                    text = text.substring(0, cut) + w + " "
                }, label = { Text(w) }, modifier = Modifier.padding(4.dp))
            }
        }
        Text(info)
    }
}
