// Stand-in for the few signatures of this Apple / ExecuTorch / swift-transformers module that the app's
// non-UI files call, written from its documentation so swiftc can type-check those files on Linux
// (ios_demo/tools/typecheck-app.sh). Not the library: a wrong stub would hide a wrong call.
import Foundation

public protocol Tokenizer {
    func encode(text: String, addSpecialTokens: Bool) -> [Int]
    func decode(tokens: [Int], skipSpecialTokens: Bool) -> String
}
public enum AutoTokenizer {
    public static func from(modelFolder: URL) async throws -> Tokenizer { fatalError("stub") }
}
