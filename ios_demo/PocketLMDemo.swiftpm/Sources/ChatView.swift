import PocketLMKit
import SwiftUI

/// Streaming chat through the bundle's chat format and the `chat` preset (system prompt, budget, sampling, stops).
struct ChatView: View {
    let demo: DemoModel
    @State private var history: [Message] = []
    @State private var input = ""
    @State private var streaming = ""
    @State private var busy = false
    @State private var info = ""

    var body: some View {
        VStack {
            ScrollView {
                ForEach(Array(history.enumerated()), id: \.offset) { _, m in
                    Text("\(m.role): \(m.content)").frame(maxWidth: .infinity, alignment: .leading).padding(4)
                }
                if !streaming.isEmpty { Text("assistant: \(streaming)").frame(maxWidth: .infinity, alignment: .leading).padding(4) }
            }
            Text(info).font(.caption)
            HStack {
                TextField("Message", text: $input).textFieldStyle(.roundedBorder)
                Button("Send", action: send).disabled(busy || input.trimmingCharacters(in: .whitespaces).isEmpty)
            }
        }
        .padding()
    }

    private func send() {
        history.append(Message(role: "user", content: input.trimmingCharacters(in: .whitespacesAndNewlines)))
        input = ""
        busy = true
        let messages = history
        Task.detached {
            var answer = ""
            var note = ""
            do {
                let preset = try demo.presets.preset("chat")
                let system = (preset["system"] as? String).map { [Message(role: "system", content: $0)] } ?? []
                let ids = try demo.model.encode(.chat(system + messages))
                let stats = try demo.model.generator.generate(
                    ids, maxNewTokens: preset["max_new_tokens"] as? Int ?? 256,
                    sampling: try SamplingParams(json: preset["sampling"] as? [String: Any] ?? [:]),
                    stop: preset["stop"] as? [String] ?? []) { piece in
                    answer += piece
                    let shown = answer
                    Task { @MainActor in streaming = shown }
                }
                note = "\(stats.generatedTokens) tokens, \(String(format: "%.1f", stats.decodeTokensPerSecond)) tok/s decode"
            } catch {
                answer = "(\(error))"
            }
            let final = pyStrip(answer), shownNote = note
            await MainActor.run {
                streaming = ""
                history.append(Message(role: "assistant", content: final))
                info = shownNote
                busy = false
            }
        }
    }
}
