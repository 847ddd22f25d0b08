import Foundation
import XCTest
@testable import PocketLMKit

/// The shared test vectors the Python SDK wrote (tests/app_contract.py), in the folder POCKETLM_VECTORS names.
struct MissingVectors: Error, CustomStringConvertible {
    var description: String { "POCKETLM_VECTORS is not set: run these tests through `pytest tests/test_app_contract.py`" }
}

enum Vectors {
    static func dir() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment["POCKETLM_VECTORS"] else {
            throw MissingVectors()
        }
        return URL(fileURLWithPath: path)
    }

    static func load(_ name: String) throws -> Any {
        let data = try Data(contentsOf: try dir().appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data)
    }

    static func object(_ name: String) throws -> [String: Any] { try XCTUnwrap(try load(name) as? [String: Any]) }
    static func array(_ name: String) throws -> [[String: Any]] { try XCTUnwrap(try load(name) as? [[String: Any]]) }
}

func ints(_ any: Any?) -> [Int] { (any as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.intValue } }
func floats(_ any: Any?) -> [Float] { (any as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.floatValue } }
func doubles(_ any: Any?) -> [Double] { (any as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.doubleValue } }
func strings(_ any: Any?) -> [String] { any as? [String] ?? [] }
func messages(_ any: Any?) -> [Message] {
    (any as? [[String: Any]] ?? []).map { Message(role: $0["role"] as? String ?? "", content: $0["content"] as? String ?? "") }
}

/// sha256 through coreutils' sha256sum: CryptoKit (the app's) is not on Linux.
func sha256sum(_ url: URL) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [url.path]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

/// The tiny byte-level tokenizer as a table of each token's bytes (decode exactly as `tokenizers` does), with the
/// encodings of the texts the tests encode. On iOS the kit is given swift-transformers' tokenizer instead.
final class ByteTableTokenizer: TextTokenizer {
    let table: [[UInt8]]
    let specials: Set<Int>
    let encodings: [String: [Int]]
    var vocabSize: Int { table.count }

    init(_ json: [String: Any]) {
        table = strings(json["token_bytes"]).map { hex in
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                bytes.append(UInt8(hex[i..<j], radix: 16)!)
                i = j
            }
            return bytes
        }
        specials = Set(ints(json["special_ids"]))
        var enc: [String: [Int]] = [:]
        for (k, v) in json["encodings"] as? [String: Any] ?? [:] { enc[k] = ints(v) }
        encodings = enc
    }

    func encode(_ text: String) -> [Int] {
        guard let ids = encodings[text] else { fatalError("the vectors have no encoding of \(text.debugDescription)") }
        return ids
    }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        for i in ids where !(skipSpecialTokens && specials.contains(i)) { bytes += table[i] }
        return String(decoding: bytes, as: UTF8.self)  // invalid sequences become U+FFFD, as Python's "replace"
    }
}

/// The Python side's HashEngine (tests/app_contract.py): logits are a hash of every token at positions 0..p.
final class HashRuntime: ModelRuntime {
    let vocab: Int
    var cache: [Int]

    init(maxContext: Int, vocab: Int) {
        self.vocab = vocab
        cache = [Int](repeating: 0, count: maxContext)
    }

    func forward(_ tokens: [Int], start: Int) throws -> [Float] {
        for (i, t) in tokens.enumerated() { cache[start + i] = t }
        var h: Int64 = 1469598103
        for i in 0..<(start + tokens.count) { h = (h * 1000003 + Int64(cache[i]) + 1) % 2147483647 }
        return (0..<vocab).map { v in Float(Double((h * 31 + Int64(v) * 7919) % 10007) / 1000.0 - 5.0) }
    }
}

func hashModel(bundlePath: String, maxContext: Int, maxPrefill: Int) throws -> LanguageModel {
    let bundle = try PocketBundle.open(URL(fileURLWithPath: bundlePath), verify: false)
    let tokenizer = ByteTableTokenizer(try Vectors.object("byte_tokenizer.json"))
    let engine = Engine(runtime: HashRuntime(maxContext: maxContext, vocab: tokenizer.vocabSize), maxContext: maxContext, maxPrefill: maxPrefill)
    return LanguageModel(bundle: bundle, tokenizer: tokenizer, engine: engine)
}
