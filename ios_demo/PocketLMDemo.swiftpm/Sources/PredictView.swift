import PocketLMKit
import SwiftUI

/// Keyboard-style prediction: suggestion chips update as you type; tapping one completes the word.
struct PredictView: View {
    let demo: DemoModel
    @State private var text = ""
    @State private var words: [String] = []
    @State private var info = ""

    var body: some View {
        VStack(alignment: .leading) {
            TextField("Type", text: $text, axis: .vertical).textFieldStyle(.roundedBorder)
            HStack {
                ForEach(words, id: \.self) { w in
                    Button(w) { complete(with: w) }.buttonStyle(.bordered)
                }
            }
            Text(info).font(.caption)
            Spacer()
        }
        .padding()
        .task(id: text) { await predict() }  // restarts on every keystroke; the predictor reuses the cached prefix
    }

    private func predict() async {
        let current = text
        let k = (try? demo.presets.preset("predict"))?["k"] as? Int ?? 3
        let result = await Task.detached { () -> Result<Prediction, Error> in
            guard let predictor = demo.predictor else { return .failure(PocketLMError.task("no predict preset in this bundle")) }
            return Result { try predictor.predict(current, k: k) }
        }.value
        switch result {
        case .success(let p):
            words = p.words
            info = "reused \(p.reusedTokens) cached tokens, ran \(p.newTokens) + \(p.steps) steps"
        case .failure(let error):
            info = "\(error)"
        }
    }

    private func complete(with word: String) {
        var head = text
        while let last = head.unicodeScalars.last, last.properties.isAlphabetic || last == "'" || last == "-" { head.unicodeScalars.removeLast() }
        text = head + word + " "
    }
}
