package dev.pocketlm.demo.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Button
import androidx.compose.material3.DropdownMenu
import androidx.compose.material3.DropdownMenuItem
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.pocketlm.core.PocketLMException
import dev.pocketlm.core.Translation
import dev.pocketlm.demo.DemoModel
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Translation between the languages the bundle's model card lists (preset `translate.languages`), sentence by sentence. */
@Composable
fun TranslateScreen(demo: DemoModel) {
    val preset = demo.presets.translate
    val languages = preset.getJSONObject("languages").let { o -> o.keys().asSequence().associateWith { o.getString(it) } }
    var source by remember { mutableStateOf("en") }
    var target by remember { mutableStateOf(languages.keys.firstOrNull { it != "en" } ?: "en") }
    var input by remember { mutableStateOf("") }
    var output by remember { mutableStateOf("") }
    val scope = rememberCoroutineScope()

    Column(Modifier.padding(8.dp)) {
        Row {
            LanguageMenu(languages, source) { source = it }
            Text("→", Modifier.padding(12.dp))
            LanguageMenu(languages, target) { target = it }
        }
        OutlinedTextField(input, { input = it }, Modifier.fillMaxWidth(), label = { Text("Text") })
        Button(onClick = {
            output = ""
            scope.launch {
                withContext(Dispatchers.Default) {
                    try {
                        Translation.translate(demo.model, preset, input, source, target) { _, done ->
                            scope.launch(Dispatchers.Main) { output = (output + " " + done).trim() }
                        }
                    } catch (e: PocketLMException) {
                        output = e.message ?: ""
                    }
                }
            }
        }) { Text("Translate") }
        Text(output, Modifier.padding(8.dp))
    }
}

@Composable
private fun LanguageMenu(languages: Map<String, String>, selected: String, onSelect: (String) -> Unit) {
    var expanded by remember { mutableStateOf(false) }
    TextButton(onClick = { expanded = true }) { Text(languages[selected] ?: selected) }
    DropdownMenu(expanded, { expanded = false }) {
        languages.forEach { (code, name) -> DropdownMenuItem(text = { Text(name) }, onClick = { onSelect(code); expanded = false }) }
    }
}
