import Foundation
import PocketLMKit
import Tokenizers

/// The bundle's tokenizer.json through swift-transformers (Hugging Face's Swift tokenizers), as the kit wants it.
final class HFTokenizer: TextTokenizer {
    private let tokenizer: Tokenizer
    let vocabSize: Int

    init(bundle: PocketBundle) async throws {
        // The bundle folder holds tokenizer.json and tokenizer_config.json, as a Hugging Face model folder does.
        tokenizer = try await AutoTokenizer.from(modelFolder: bundle.url)
        vocabSize = bundle.vocabSize
    }

    func encode(_ text: String) -> [Int] { tokenizer.encode(text: text, addSpecialTokens: false) }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { tokenizer.decode(tokens: ids, skipSpecialTokens: skipSpecialTokens) }
}
