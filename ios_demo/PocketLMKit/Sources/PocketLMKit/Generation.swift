import Foundation

/// The tokenizer the kit needs: swift-transformers' on iOS (an adapter in the app), a table in tests.
public protocol TextTokenizer {
    var vocabSize: Int { get }
    /// Token ids of `text`; special tokens written in the text map to their ids; no BOS added.
    func encode(_ text: String) -> [Int]
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
}

/// What a runtime does for one call: run `tokens` at positions start.. and return the last token's logits.
public protocol ModelRuntime: AnyObject {
    func forward(_ tokens: [Int], start: Int) throws -> [Float]
}

/// A loaded model with a KV cache, as sdk_python/engines/base.py defines it: positions advance with every
/// token fed in; prompts longer than one call takes are prefilled in chunks.
public final class Engine {
    public let maxContext: Int
    public let maxPrefill: Int
    public private(set) var position = 0
    /// Counts reset() calls: a holder of cached positions (the predictor) can tell its cache was dropped.
    public private(set) var epoch = 0
    /// Seconds spent inside the runtime's own call, summed.
    public private(set) var runtimeSeconds = 0.0
    public let runtime: ModelRuntime

    public init(runtime: ModelRuntime, maxContext: Int, maxPrefill: Int) {
        self.runtime = runtime
        self.maxContext = maxContext
        self.maxPrefill = maxPrefill
    }

    public var room: Int { maxContext - position }

    private func call(_ tokens: [Int]) throws -> [Float] {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let logits = try runtime.forward(tokens, start: position)
        runtimeSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        position += tokens.count
        return logits
    }

    public func prefill(_ tokens: [Int]) throws -> [Float] {
        guard !tokens.isEmpty else { throw PocketLMError.generation("prefill needs at least one token") }
        try checkRoom(tokens.count)
        var logits: [Float] = []
        var i = 0
        while i < tokens.count {
            logits = try call(Array(tokens[i..<min(i + maxPrefill, tokens.count)]))
            i += maxPrefill
        }
        return logits
    }

    public func decode(_ token: Int) throws -> [Float] {
        try checkRoom(1)
        return try call([token])
    }

    public func reset() {
        position = 0
        epoch += 1
    }

    public func rewind(_ n: Int) throws {
        guard n >= 0 && n <= position else {
            throw PocketLMError.generation("cannot rewind to \(n): \(position) tokens are cached")
        }
        position = n
    }

    private func checkRoom(_ n: Int) throws {
        if n > room {
            throw PocketLMError.generation("\(n) more tokens do not fit: \(position) of this bundle's \(maxContext)-token context used")
        }
    }
}

public struct SamplingParams {
    public var temperature = 0.0
    public var topK = 0
    public var topP = 1.0
    public var repetitionPenalty = 1.0
    public var seed: UInt64?

    public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, repetitionPenalty: Double = 1, seed: UInt64? = nil) throws {
        guard temperature >= 0 else { throw PocketLMError.generation("temperature must be >= 0, got \(temperature)") }
        guard topK >= 0 else { throw PocketLMError.generation("top_k must be >= 0, got \(topK)") }
        guard topP > 0 && topP <= 1 else { throw PocketLMError.generation("top_p must be in (0, 1], got \(topP)") }
        guard repetitionPenalty > 0 else { throw PocketLMError.generation("repetition_penalty must be > 0, got \(repetitionPenalty)") }
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    /// A preset's `sampling` object (manifest `tasks`).
    public init(json: [String: Any]) throws {
        try self.init(temperature: (json["temperature"] as? NSNumber)?.doubleValue ?? 0, topK: json["top_k"] as? Int ?? 0,
                      topP: (json["top_p"] as? NSNumber)?.doubleValue ?? 1,
                      repetitionPenalty: (json["repetition_penalty"] as? NSNumber)?.doubleValue ?? 1)
    }
}

/// A small seeded generator (SplitMix64): the same distribution as the SDK, a different random stream.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Next-token choice as sdk_python/sampling.py makes it: repetition penalty, then greedy, or temperature,
/// top-k and top-p (float32 logits arithmetic as NumPy does it).
public final class Sampler {
    public let params: SamplingParams
    private var rng: SplitMix64

    public init(_ params: SamplingParams) {
        self.params = params
        rng = SplitMix64(state: params.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    public func sample(_ logits: [Float], history: [Int]) -> Int {
        let penalized = self.penalized(logits, history: history)
        if params.temperature == 0 { return Sampler.argmax(penalized) }
        let probs = probabilities(penalized)
        var r = Double.random(in: 0..<1, using: &rng)
        for (i, p) in probs.enumerated() {
            r -= p
            if r < 0 { return i }
        }
        return probs.lastIndex(where: { $0 > 0 }) ?? 0
    }

    public func penalized(_ logits: [Float], history: [Int]) -> [Float] {
        guard params.repetitionPenalty != 1, !history.isEmpty else { return logits }
        let p = Float(params.repetitionPenalty)
        var out = logits
        for t in Set(history) where t >= 0 && t < out.count {
            out[t] = out[t] > 0 ? out[t] / p : out[t] * p
        }
        return out
    }

    public func probabilities(_ logits: [Float]) -> [Double] {
        let t = Float(params.temperature)
        var scaled = logits.map { $0 / t }
        if params.topK > 0 && params.topK < scaled.count {
            let kth = scaled.sorted(by: >)[params.topK - 1]
            for i in scaled.indices where scaled[i] < kth { scaled[i] = -.infinity }
        }
        let m = scaled.max() ?? 0
        var probs = scaled.map { exp(Double($0 - m)) }
        let sum = probs.reduce(0, +)
        probs = probs.map { $0 / sum }
        if params.topP < 1 {
            let order = probs.indices.sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            var cumulative = 0.0
            var keep = Set<Int>()
            for i in order {
                keep.insert(i)
                cumulative += probs[i]
                if cumulative >= params.topP { break }
            }
            var kept = 0.0
            for i in probs.indices { if keep.contains(i) { kept += probs[i] } else { probs[i] = 0 } }
            probs = probs.map { $0 / kept }
        }
        return probs
    }

    public static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }

    /// log-softmax in float64, as the SDK scores tokens.
    public static func logSoftmax(_ logits: [Float]) -> [Double] {
        let m = Double(logits.max() ?? 0)
        let s = logits.reduce(0.0) { $0 + exp(Double($1) - m) }
        let lse = m + log(s)
        return logits.map { Double($0) - lse }
    }
}

// MARK: - text by Unicode scalar (Python's str semantics, not Swift's grapheme clusters)

typealias Scalars = [Unicode.Scalar]

func scalars(_ s: String) -> Scalars { Array(s.unicodeScalars) }

func string<C: Collection>(_ s: C) -> String where C.Element == Unicode.Scalar {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: s)
    return String(view)
}

func firstIndex(of needle: Scalars, in hay: Scalars) -> Int? {
    guard needle.count <= hay.count else { return nil }
    if needle.isEmpty { return 0 }
    for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle {
        return i
    }
    return nil
}

func hasPrefix(_ s: Scalars, _ prefix: Scalars) -> Bool { prefix.count <= s.count && Array(s[0..<prefix.count]) == prefix }
func hasSuffix(_ s: Scalars, _ suffix: Scalars) -> Bool { suffix.count <= s.count && Array(s[(s.count - suffix.count)...]) == suffix }

/// Turns a growing token list into text pieces that are whole characters (sdk_python/tokenizer.py).
public final class StreamDetokenizer {
    private let tokenizer: TextTokenizer
    public private(set) var tokens: [Int] = []
    private var prefix = 0
    private var read = 0

    public init(_ tokenizer: TextTokenizer) { self.tokenizer = tokenizer }

    public func add(_ token: Int) -> String {
        tokens.append(token)
        let prefixText = scalars(tokenizer.decode(Array(tokens[prefix..<read]), skipSpecialTokens: true))
        let text = scalars(tokenizer.decode(Array(tokens[prefix...]), skipSpecialTokens: true))
        if text.count > prefixText.count && text.last != "\u{FFFD}" {
            prefix = read
            read = tokens.count
            return string(text[prefixText.count...])
        }
        return ""
    }

    public func flush() -> String {
        let prefixText = scalars(tokenizer.decode(Array(tokens[prefix..<read]), skipSpecialTokens: true))
        let text = scalars(tokenizer.decode(Array(tokens[prefix...]), skipSpecialTokens: true))
        prefix = tokens.count
        read = tokens.count
        return text.count > prefixText.count ? string(text[prefixText.count...]) : ""
    }
}

/// Holds back text that could be the start of a stop string; reports where one completes.
public final class StopMatcher {
    private let stops: [Scalars]
    private var pending: Scalars = []

    public init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty }.map(scalars) }

    public func feed(_ text: String) -> (String, Bool) {
        pending += scalars(text)
        for s in stops {
            if let i = firstIndex(of: s, in: pending) {
                let out = string(pending[0..<i])
                pending = []
                return (out, true)
            }
        }
        var hold = 0
        for s in stops {
            var k = min(s.count - 1, pending.count)
            while k >= 1 {
                if hasSuffix(pending, Array(s[0..<k])) { hold = max(hold, k); break }
                k -= 1
            }
        }
        let out = string(pending[0..<(pending.count - hold)])
        pending = Array(pending[(pending.count - hold)...])
        return (out, false)
    }

    public func flush() -> String {
        defer { pending = [] }
        return string(pending)
    }
}

public struct GenerationStats {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var decodeRuntimeSeconds = 0.0
    public var finishReason = ""
    public var tokens: [Int] = []

    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0
    }
}

/// Streaming generation over an Engine, as sdk_python/generation.py does it: reset, prefill, then sample /
/// decode token by token until an end-of-sequence token, a stop string, the budget or the context's end.
public final class Generator {
    let engine: Engine
    let tokenizer: TextTokenizer
    let eosTokenIds: Set<Int>

    public init(engine: Engine, tokenizer: TextTokenizer, eosTokenIds: Set<Int>) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.eosTokenIds = eosTokenIds
    }

    @discardableResult
    public func generate(_ promptIds: [Int], maxNewTokens: Int = 256, sampling: SamplingParams? = nil, stop: [String] = [],
                         onText: (String) -> Void = { _ in }) throws -> GenerationStats {
        guard maxNewTokens >= 1 else { throw PocketLMError.generation("max_new_tokens must be >= 1, got \(maxNewTokens)") }
        guard !promptIds.isEmpty else { throw PocketLMError.generation("the prompt is empty") }
        guard promptIds.count < engine.maxContext else {
            throw PocketLMError.generation(
                "the prompt is \(promptIds.count) tokens; this bundle's context is \(engine.maxContext) (prompt and answer together)")
        }
        let sampler = Sampler(try sampling ?? SamplingParams())
        let detok = StreamDetokenizer(tokenizer)
        let stopper = StopMatcher(stop)
        var history = promptIds
        var stats = GenerationStats()
        stats.promptTokens = promptIds.count
        engine.reset()
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try engine.prefill(promptIds)
        let t1 = DispatchTime.now().uptimeNanoseconds
        stats.prefillSeconds = Double(t1 - t0) / 1e9
        let runtimeBefore = engine.runtimeSeconds
        func finished(_ s: GenerationStats) -> GenerationStats {
            var s = s
            s.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
            s.decodeRuntimeSeconds = engine.runtimeSeconds - runtimeBefore
            return s
        }
        stats.finishReason = "length"
        for i in 0..<maxNewTokens {
            let token = sampler.sample(logits, history: history)
            history.append(token)
            stats.tokens.append(token)
            stats.generatedTokens += 1
            if eosTokenIds.contains(token) {
                stats.finishReason = "eos"
                break
            }
            let (text, stopped) = stopper.feed(detok.add(token))
            if !text.isEmpty { onText(text) }
            if stopped {
                stats.finishReason = "stop"
                return finished(stats)
            }
            if i + 1 == maxNewTokens { break }
            if engine.room < 1 {
                stats.finishReason = "context"
                break
            }
            logits = try engine.decode(token)
        }
        let (text, stopped) = stopper.feed(detok.flush())
        if stopped { stats.finishReason = "stop" }
        let tail = stopped ? text : text + stopper.flush()
        if !tail.isEmpty { onText(tail) }
        return finished(stats)
    }
}
