import Foundation
import PocketLMKit

/// A bundle opened for the screens: checked (schema, every file's sha256), loaded with its runtime and tokenizer,
/// its task presets read from the manifest.
final class DemoModel {
    let model: LanguageModel
    let presets: TaskPresets
    let loadMs: Double

    private init(model: LanguageModel, presets: TaskPresets, loadMs: Double) {
        self.model = model
        self.presets = presets
        self.loadMs = loadMs
    }

    var bundle: PocketBundle { model.bundle }

    static func load(_ url: URL) async throws -> DemoModel {
        let t0 = Date()
        let bundle = try PocketBundle.open(url)  // CryptoKit sha256 of every file
        let runtime = try await Runtimes.open(bundle)
        let engine = Engine(runtime: runtime, maxContext: bundle.runtime.maxContext, maxPrefill: bundle.runtime.maxPrefill)
        let model = LanguageModel(bundle: bundle, tokenizer: try await HFTokenizer(bundle: bundle), engine: engine)
        return DemoModel(model: model, presets: try TaskPresets(bundle: bundle), loadMs: Date().timeIntervalSince(t0) * 1000)
    }

    lazy var predictor: TextPredictor? = {
        guard let p = try? presets.preset("predict") else { return nil }
        return TextPredictor(model: model, beam: p["beam"] as? Int ?? 6, maxWordTokens: p["max_word_tokens"] as? Int ?? 4,
                             timeBudgetSeconds: ((p["time_budget_ms"] as? NSNumber)?.doubleValue ?? 250) / 1000)
    }()

    func healthAssistant() throws -> HealthAssistant {
        guard let url = Foundation.Bundle.main.url(forResource: "health_knowledge", withExtension: "md"),
              let notes = try? String(contentsOf: url, encoding: .utf8) else {
            throw PocketLMError.task("the app's health notes are missing from its resources")
        }
        return try HealthAssistant(preset: try presets.preset("health"), knowledge: try Knowledge.fromMarkdown(notes), model: model)
    }

    static var documents: URL { FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0] }

    /// Bundles in Documents/bundles (Files app, or `xcrun devicectl device copy to … --destination Documents/bundles/NAME`).
    static func bundles() -> [URL] {
        let root = documents.appendingPathComponent("bundles")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let items = (try? FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? []
        return items.filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("manifest.json").path) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}
