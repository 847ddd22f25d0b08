package dev.pocketlm.demo

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Tab
import androidx.compose.material3.TabRow
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.unit.dp
import dev.pocketlm.core.PocketLMException
import dev.pocketlm.demo.ui.ChatScreen
import dev.pocketlm.demo.ui.HealthScreen
import dev.pocketlm.demo.ui.PredictScreen
import dev.pocketlm.demo.ui.TranslateScreen
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { App() } }
    }
}

private val TABS = listOf("Chat", "Predict", "Translate", "Health")

@Composable
private fun App() {
    val context = LocalContext.current
    val scope = rememberCoroutineScope()
    var model by remember { mutableStateOf<DemoModel?>(null) }
    var status by remember { mutableStateOf("Choose a bundle") }
    var tab by remember { mutableIntStateOf(0) }

    fun open(dir: File) {
        status = "Loading ${dir.name} (checking every file's sha256)…"
        scope.launch {
            val next = withContext(Dispatchers.Default) {
                try {
                    Result.success(DemoModel.load(dir))
                } catch (e: PocketLMException) {
                    Result.failure(e)
                }
            }
            next.onSuccess {
                model?.close()
                model = it
                status = "${it.bundle.name}: ${it.bundle.runtime.backend}/${it.bundle.runtime.delegate}, loaded in ${"%.0f".format(it.loadMs)} ms"
            }.onFailure { status = it.message ?: "could not load ${dir.name}" }
        }
    }

    Scaffold { padding ->
        Column(Modifier.padding(padding).fillMaxSize()) {
            Text(status, Modifier.padding(8.dp), style = MaterialTheme.typography.bodySmall)
            val current = model
            if (current == null) {
                BundlePicker(BundleStore.list(context), ::open)
            } else {
                TabRow(selectedTabIndex = tab) {
                    TABS.forEachIndexed { i, title -> Tab(selected = tab == i, onClick = { tab = i }, text = { Text(title) }) }
                }
                when (tab) {
                    0 -> ChatScreen(current)
                    1 -> PredictScreen(current)
                    2 -> TranslateScreen(current)
                    else -> HealthScreen(current)
                }
            }
        }
    }
}

@Composable
private fun BundlePicker(bundles: List<File>, onOpen: (File) -> Unit) {
    if (bundles.isEmpty()) {
        Text(
            "No bundles found. Push one with\nadb push BUNDLE /sdcard/Android/data/dev.pocketlm.demo/files/bundles/\n" +
                "or to ${BundleStore.ADB_ROOT}/",
            Modifier.padding(16.dp),
        )
        return
    }
    LazyColumn {
        items(bundles) { dir ->
            Row(Modifier.padding(8.dp)) { Button(onClick = { onOpen(dir) }) { Text(dir.name) } }
        }
    }
}
