import Foundation

/// Every error of the kit: one readable line, the Python SDK's wording where the SDK has one.
public enum PocketLMError: Error, CustomStringConvertible, Equatable {
    case bundle(String)
    case generation(String)
    case task(String)
    case benchmark(String)

    public var description: String {
        switch self {
        case .bundle(let m), .generation(let m), .task(let m), .benchmark(let m): return m
        }
    }
}

/// The bundle schema this app reads (sdk_python/bundle.py SCHEMA_VERSION).
public let bundleSchemaVersion = 1

/// How a file's sha256 is computed: CryptoKit on Apple platforms (the app); tests on Linux pass their own.
public typealias FileHasher = (URL) throws -> String

public struct TokenizerSpec {
    public let file: String
    public let bosTokenId: Int?
    public let eosTokenIds: Set<Int>
    public let addBosToken: Bool
    public let hasChatTemplate: Bool
    public let chatFormat: ChatFormat?
}

public struct RuntimeSpec {
    public let backend: String
    public let delegate: String?
    public let program: String
    public let maxContext: Int
    public let maxPrefill: Int
    public let prefillLengths: [Int]
    /// runtime.methods' names: an ExecuTorch bundle with "prefill" runs prompts through it.
    public let methods: Set<String>
}

/// A pocketlm bundle: manifest.json checked (schema version, the fields the app uses) and, unless told
/// otherwise, every file's size and sha256 checked against it — the checks and messages of sdk_python/bundle.py.
public struct PocketBundle {
    public static let manifestName = "manifest.json"

    public let url: URL
    public let manifest: [String: Any]
    public let name: String
    public let family: String
    public let parameters: Int
    public let vocabSize: Int
    public let tokenizer: TokenizerSpec
    public let runtime: RuntimeSpec

    public func file(_ relative: String) -> URL { url.appendingPathComponent(relative) }

    /// The program's sha256 as the manifest lists it (benchmark results name the exact program).
    public var programSha256: String {
        ((manifest["files"] as? [String: Any])?[runtime.program] as? [String: Any])?["sha256"] as? String ?? ""
    }

    public var tasks: [String: Any]? { manifest["tasks"] as? [String: Any] }

    public static func open(_ url: URL, verify: Bool = true, hasher: FileHasher? = nil) throws -> PocketBundle {
        let path = url.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw PocketLMError.bundle("\(path) is not a bundle folder (no such directory)")
        }
        let manifestURL = url.appendingPathComponent(manifestName)
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw PocketLMError.bundle("\(path) is not a bundle: \(manifestName) is missing")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw PocketLMError.bundle("\(manifestURL.path) is not valid JSON (\(error.localizedDescription))")
        }
        guard let manifest = parsed as? [String: Any], let version = manifest["schema_version"] as? Int else {
            throw PocketLMError.bundle("\(manifestURL.path) has no integer schema_version")
        }
        if version > bundleSchemaVersion {
            throw PocketLMError.bundle(
                "\(path) was written with bundle schema \(version); this app reads up to \(bundleSchemaVersion) (update the app)")
        }
        let bundle: PocketBundle
        do {
            bundle = try PocketBundle(url: url, manifest: manifest)
        } catch let JSONField.missing(field) {
            throw PocketLMError.bundle("\(manifestURL.path) does not follow the bundle schema at \(field)")
        }
        if verify {
            guard let hasher = hasher ?? defaultHasher else {
                throw PocketLMError.bundle("no sha256 implementation on this platform: pass a hasher")
            }
            try bundle.verifyFiles(hasher: hasher)
        }
        return bundle
    }

    private init(url: URL, manifest: [String: Any]) throws {
        self.url = url
        self.manifest = manifest
        name = try manifest.string("name")
        let model = try manifest.object("model")
        family = try model.string("family")
        parameters = model["parameters"] as? Int ?? 0
        vocabSize = try (try model.object("shape")).int("vocab_size")
        let t = try manifest.object("tokenizer")
        tokenizer = TokenizerSpec(
            file: try t.string("file"),
            bosTokenId: t["bos_token_id"] as? Int,
            eosTokenIds: Set(try t.array("eos_token_ids").compactMap { $0 as? Int }),
            addBosToken: t["add_bos_token"] as? Bool ?? false,
            hasChatTemplate: t["chat_template"] is String,
            chatFormat: try (t["chat_format"] as? [String: Any]).map(ChatFormat.init(json:))
        )
        let r = try manifest.object("runtime")
        runtime = RuntimeSpec(
            backend: try r.string("backend"),
            delegate: r["delegate"] as? String,
            program: try r.string("program"),
            maxContext: try r.int("max_context"),
            maxPrefill: try r.int("max_prefill"),
            prefillLengths: (r["prefill_lengths"] as? [Any] ?? []).compactMap { $0 as? Int },
            methods: Set((r["methods"] as? [String: Any] ?? [:]).keys)
        )
    }

    public func verifyFiles(hasher: FileHasher) throws {
        guard let listed = manifest["files"] as? [String: Any] else {
            throw PocketLMError.bundle("\(url.path): the manifest lists no files")
        }
        let fm = FileManager.default
        for relative in listed.keys.sorted() {
            let entry = listed[relative] as? [String: Any] ?? [:]
            let f = file(relative)
            guard fm.fileExists(atPath: f.path) else {
                throw PocketLMError.bundle("bundle \(url.path) is incomplete: \(relative) is missing")
            }
            let size = (try? fm.attributesOfItem(atPath: f.path)[.size] as? NSNumber)??.intValue ?? -1
            let matches = try size == entry["bytes"] as? Int ?? -2 && hasher(f) == entry["sha256"] as? String
            if !matches {
                throw PocketLMError.bundle("bundle \(url.path) failed its integrity check: \(relative) does not match its sha256")
            }
        }
        var present: [String] = []
        if let walker = fm.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) {
            let root = url.standardizedFileURL.path
            for case let f as URL in walker {
                guard (try? f.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
                var relative = String(f.standardizedFileURL.path.dropFirst(root.count))
                if relative.hasPrefix("/") { relative.removeFirst() }
                if relative != PocketBundle.manifestName { present.append(relative) }
            }
        }
        let unlisted = present.filter { listed[$0] == nil }.sorted()
        if !unlisted.isEmpty {
            throw PocketLMError.bundle("bundle \(url.path) holds files its manifest does not list: \(unlisted.joined(separator: ", "))")
        }
    }

    #if canImport(CryptoKit)
    static let defaultHasher: FileHasher? = { url in try sha256Hex(url) }
    #else
    static let defaultHasher: FileHasher? = nil
    #endif
}

#if canImport(CryptoKit)
import CryptoKit

func sha256Hex(_ url: URL) throws -> String {
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    var digest = SHA256()
    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { digest.update(data: chunk) }
    return digest.finalize().map { String(format: "%02x", $0) }.joined()
}
#endif

// MARK: - JSON access with the field named in the error

enum JSONField: Error { case missing(String) }

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) throws -> String {
        guard let v = self[key] as? String else { throw JSONField.missing(key) }
        return v
    }
    func int(_ key: String) throws -> Int {
        guard let v = self[key] as? Int else { throw JSONField.missing(key) }
        return v
    }
    func double(_ key: String) throws -> Double {
        guard let v = self[key] as? NSNumber else { throw JSONField.missing(key) }
        return v.doubleValue
    }
    func bool(_ key: String) throws -> Bool {
        guard let v = self[key] as? Bool else { throw JSONField.missing(key) }
        return v
    }
    func object(_ key: String) throws -> [String: Any] {
        guard let v = self[key] as? [String: Any] else { throw JSONField.missing(key) }
        return v
    }
    func array(_ key: String) throws -> [Any] {
        guard let v = self[key] as? [Any] else { throw JSONField.missing(key) }
        return v
    }
    func strings(_ key: String) throws -> [String] {
        try array(key).map { guard let s = $0 as? String else { throw JSONField.missing(key) }; return s }
    }
}
