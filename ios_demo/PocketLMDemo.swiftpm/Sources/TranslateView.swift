import PocketLMKit
import SwiftUI

/// Translation between the languages the bundle's model card lists (preset `translate.languages`), sentence by sentence.
struct TranslateView: View {
    let demo: DemoModel
    @State private var source = "en"
    @State private var target = "fr"
    @State private var input = ""
    @State private var output = ""

    private var languages: [String: String] { (try? demo.presets.preset("translate"))?["languages"] as? [String: String] ?? [:] }

    var body: some View {
        VStack(alignment: .leading) {
            HStack {
                Picker("From", selection: $source) { ForEach(languages.keys.sorted(), id: \.self) { Text(languages[$0]!).tag($0) } }
                Text("→")
                Picker("To", selection: $target) { ForEach(languages.keys.sorted(), id: \.self) { Text(languages[$0]!).tag($0) } }
            }
            TextField("Text", text: $input, axis: .vertical).textFieldStyle(.roundedBorder)
            Button("Translate", action: translate)
            Text(output).padding(.top)
            Spacer()
        }
        .padding()
        .onAppear { if languages[target] == nil { target = languages.keys.sorted().first { $0 != "en" } ?? "en" } }
    }

    private func translate() {
        output = ""
        let (text, src, tgt) = (input, source, target)
        Task.detached {
            do {
                let preset = try demo.presets.preset("translate")
                _ = try Translation.translate(demo.model, preset: preset, text: text, source: src, target: tgt) { _, done in
                    Task { @MainActor in output = output.isEmpty ? done : output + " " + done }
                }
            } catch {
                let message = "\(error)"
                await MainActor.run { output = message }
            }
        }
    }
}
