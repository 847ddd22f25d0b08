import Foundation

public struct Suggestion: Equatable {
    public let word: String
    public let logprob: Double
}

public struct Prediction {
    public let partial: String
    public let suggestions: [Suggestion]
    public let reusedTokens: Int
    public let newTokens: Int
    public let steps: Int
    public var words: [String] { suggestions.map(\.word) }
}

/// What each token adds to a text and whether it starts, continues or ends a word (sdk_python/tasks/predict.py).
final class TokenTable {
    let texts: [Scalars]
    let starts: [Bool]
    let continues: [Bool]
    let boundary: [Bool]
    let special: [Bool]
    private var idsByText: [[Unicode.Scalar]: [Int]] = [:]

    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        return (v >= 97 && v <= 122) || (v >= 65 && v <= 90) || c == "'" || c == "-" || (v >= 0xC0 && v < 0x250)
    }

    init(_ tokenizer: TextTokenizer, specials: Set<Int>) {
        let anchor = Array(tokenizer.encode("a").prefix(1))
        let base = scalars(tokenizer.decode(anchor, skipSpecialTokens: false))
        let n = tokenizer.vocabSize
        texts = (0..<n).map { i in
            let full = scalars(tokenizer.decode(anchor + [i], skipSpecialTokens: false))
            return hasPrefix(full, base) ? Array(full[base.count...]) : ["\u{FFFD}"]
        }
        for (i, t) in texts.enumerated() { idsByText[t, default: []].append(i) }
        starts = texts.map { t in t.count >= 2 && t[0] == " " && t.dropFirst().allSatisfy(TokenTable.isWordChar) }
        continues = texts.map { !$0.isEmpty && $0.allSatisfy(TokenTable.isWordChar) }
        boundary = texts.enumerated().map { i, t in
            specials.contains(i) || (!t.isEmpty && (t[0].properties.isWhitespace || (!TokenTable.isWordChar(t[0]) && t[0] != "\u{FFFD}")))
        }
        special = (0..<n).map { specials.contains($0) }
    }

    /// Tokens whose text starts with `rest`, or is itself a start of `rest`.
    func consistentWith(_ rest: Scalars) -> [Bool] {
        var mask = texts.map { hasPrefix($0, rest) }
        if rest.count > 1 {
            for end in 1..<rest.count { for i in idsByText[Array(rest[0..<end])] ?? [] { mask[i] = true } }
        }
        return mask
    }
}

/// Keyboard-style next-word prediction, the SDK's algorithm: a small beam search over tokens that form one word,
/// scored when the model would end the word; the KV cache of the text before the word is kept between calls.
public final class TextPredictor {
    let model: LanguageModel
    let beam: Int
    let maxWordTokens: Int
    let timeBudget: Double
    let minRatio: Double
    let table: TokenTable
    private var cached: [Int] = []
    private var lastLogits: [Float]?
    private var epoch: Int
    private var consistentMemo: [Scalars: [Bool]] = [:]

    private struct Candidate {
        let logprob: Double
        let tokens: [Int]
        let text: Scalars
    }

    public init(model: LanguageModel, beam: Int, maxWordTokens: Int, timeBudgetSeconds: Double, minRatio: Double = 1e-3) {
        self.model = model
        self.beam = beam
        self.maxWordTokens = maxWordTokens
        timeBudget = timeBudgetSeconds
        self.minRatio = minRatio
        let spec = model.bundle.tokenizer
        table = TokenTable(model.tokenizer, specials: spec.eosTokenIds.union(spec.bosTokenId.map { [$0] } ?? []))
        epoch = model.engine.epoch
    }

    private func logitsAfter(_ tokens: [Int]) throws -> ([Float], Int, Int) {
        let engine = model.engine
        if engine.epoch != epoch { cached = []; lastLogits = nil; epoch = engine.epoch }
        var common = 0
        while common < min(cached.count, tokens.count) && cached[common] == tokens[common] { common += 1 }
        if common == tokens.count && common == cached.count, let last = lastLogits { return (last, common, 0) }
        common = min(common, tokens.count - 1, engine.position)  // at least one token must run
        try engine.rewind(common)
        let logits = try engine.prefill(Array(tokens[common...]))
        cached = tokens
        lastLogits = logits
        return (logits, common, tokens.count - common)
    }

    private func branchLogits(_ baseLen: Int, _ base: [Float], _ tokens: [Int]) throws -> [Float] {
        if tokens.isEmpty { return base }
        try model.engine.rewind(baseLen)
        let logits = try model.engine.prefill(tokens)
        cached = Array(cached.prefix(baseLen))
        lastLogits = nil  // the cache now holds a branch, not the bare prefix
        return logits
    }

    public func predict(_ text: String, k: Int = 3) throws -> Prediction {
        guard k >= 1 else { throw PocketLMError.generation("k must be >= 1, got \(k)") }
        let deadline = Date().addingTimeInterval(timeBudget)
        let chars = scalars(text)
        var cut = chars.count
        while cut > 0 && TokenTable.isWordChar(chars[cut - 1]) { cut -= 1 }
        let partial = Array(chars[cut...])
        var contextScalars = Array(chars[0..<cut])
        while let last = contextScalars.last, last.properties.isWhitespace { contextScalars.removeLast() }  // rstrip
        let context = string(contextScalars)
        var prefix = context.isEmpty ? [] : model.encode(context)
        if prefix.isEmpty {
            guard let bos = model.bundle.tokenizer.bosTokenId else {
                throw PocketLMError.generation("this tokenizer has no BOS token to predict the first word from")
            }
            prefix = [bos]
        }
        if prefix.count + maxWordTokens + 1 > model.engine.maxContext {
            prefix = Array(prefix.suffix(model.engine.maxContext - maxWordTokens - 1))
            cached = []; lastLogits = nil
        }
        let (baseLogits, reused, new) = try logitsAfter(prefix)
        let baseLen = prefix.count
        let want = (context.isEmpty ? [] : [" "]) + partial
        var frontier = [Candidate(logprob: 0, tokens: [], text: [])]
        var complete: [(String, Double)] = []  // insertion order, as a Python dict
        var steps = 0
        func score(of word: String) -> Double? { complete.first { $0.0 == word }?.1 }
        for depth in 0...maxWordTokens {
            var grown: [Candidate] = []
            for cand in frontier {
                if Date() > deadline && !complete.isEmpty { break }
                if cand.logprob <= kth(complete, k) { continue }  // bounds every word it can become
                let logits = try branchLogits(baseLen, baseLogits, cand.tokens)
                if !cand.tokens.isEmpty { steps += 1 }
                var logp = Sampler.logSoftmax(logits)
                for i in logp.indices where table.special[i] && !table.boundary[i] { logp[i] = -.infinity }
                let word = pyStrip(string(cand.text))
                if !cand.tokens.isEmpty && !word.isEmpty && hasPrefix(scalars(word), partial) {
                    let s = cand.logprob + logSumExp(logp, table.boundary)
                    if let old = score(of: word) {
                        if s > old, let i = complete.firstIndex(where: { $0.0 == word }) { complete[i].1 = s }
                    } else {
                        complete.append((word, s))
                    }
                }
                if depth == maxWordTokens { continue }
                var allowed = cand.tokens.isEmpty && !context.isEmpty ? table.starts : table.continues
                if cand.tokens.isEmpty && context.isEmpty { for i in allowed.indices { allowed[i] = allowed[i] || table.continues[i] } }
                let consistent = self.consistent(cand.text, want)
                let scores = logp.indices.map { allowed[$0] && consistent[$0] ? logp[$0] : -.infinity }
                let top = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(beam)
                for t in top where scores[t].isFinite {
                    grown.append(Candidate(logprob: cand.logprob + scores[t], tokens: cand.tokens + [t], text: cand.text + table.texts[t]))
                }
            }
            let threshold = kth(complete, k)
            frontier = Array(grown.enumerated().sorted { $0.element.logprob > $1.element.logprob || ($0.element.logprob == $1.element.logprob && $0.offset < $1.offset) }
                .map(\.element).prefix(beam)).filter { $0.logprob > threshold }
            if frontier.isEmpty || (Date() > deadline && !complete.isEmpty) { break }
        }
        var best = Array(complete.enumerated().sorted { $0.element.1 > $1.element.1 || ($0.element.1 == $1.element.1 && $0.offset < $1.offset) }
            .map(\.element).prefix(k))
        if let top = best.first { best = best.filter { $0.1 >= top.1 + log(minRatio) } }
        return Prediction(partial: string(partial), suggestions: best.map { Suggestion(word: $0.0, logprob: $0.1) },
                          reusedTokens: reused, newTokens: new, steps: steps)
    }

    private func kth(_ complete: [(String, Double)], _ k: Int) -> Double {
        complete.count >= k ? complete.map(\.1).sorted()[complete.count - k] : -.infinity
    }

    private func consistent(_ text: Scalars, _ want: Scalars) -> [Bool] {
        if text.count >= want.count { return [Bool](repeating: true, count: table.texts.count) }
        let rest = Array(want[text.count...])
        if let m = consistentMemo[rest] { return m }
        let m = table.consistentWith(rest)
        consistentMemo[rest] = m
        return m
    }

    private func logSumExp(_ x: [Double], _ mask: [Bool]) -> Double {
        var m = -Double.infinity
        for i in x.indices where mask[i] { m = max(m, x[i]) }
        if m == -.infinity { return m }
        var s = 0.0
        for i in x.indices where mask[i] { s += exp(x[i] - m) }
        return m + log(s)
    }
}
