package dev.pocketlm.demo.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.unit.dp
import dev.pocketlm.core.HealthAnswer
import dev.pocketlm.core.PocketLMException
import dev.pocketlm.demo.DemoModel
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The health assistant: red flags get emergency guidance (shown in red, before anything is generated),
 * doses and diagnoses are declined, other questions are answered from the local notes, and every
 * answer ends with the not-a-diagnosis notice. Questions stay on the phone; nothing is logged.
 */
@Composable
fun HealthScreen(demo: DemoModel) {
    val context = LocalContext.current
    val assistant = remember(demo) { demo.health(context) }
    var question by remember { mutableStateOf("") }
    var streaming by remember { mutableStateOf("") }
    var answer by remember { mutableStateOf<HealthAnswer?>(null) }
    var error by remember { mutableStateOf("") }
    val scope = rememberCoroutineScope()

    Column(Modifier.padding(8.dp)) {
        OutlinedTextField(question, { question = it }, Modifier.fillMaxWidth(), label = { Text("Your question") })
        Button(enabled = question.isNotBlank(), onClick = {
            answer = null; streaming = ""; error = ""
            scope.launch {
                withContext(Dispatchers.Default) {
                    try {
                        val a = assistant.ask(question) { piece -> scope.launch(Dispatchers.Main) { streaming += piece } }
                        scope.launch(Dispatchers.Main) { answer = a }
                    } catch (e: PocketLMException) {
                        error = e.message ?: ""
                    }
                }
            }
        }) { Text("Ask") }
        val a = answer
        val emergency = a?.kind == "emergency"
        Text(a?.text ?: streaming, Modifier.padding(8.dp), color = if (emergency) Color(0xFFB00020) else Color.Unspecified)
        if (a != null) {
            if (a.passages.isNotEmpty()) Text("From the notes: ${a.passages.joinToString { it.title }}", style = MaterialTheme.typography.bodySmall)
            Text(a.notice, Modifier.padding(8.dp), style = MaterialTheme.typography.bodySmall)
        }
        if (error.isNotEmpty()) Text(error)
    }
}
