import Foundation

/// What a prompt is: chat messages (through the bundle's chat format) or plain text.
public enum Prompt: Equatable {
    case chat([Message])
    case plain(String)
}

/// A loaded bundle's model: tokenizer, chat format and engine, with the prompt encoding the SDK uses.
public final class LanguageModel {
    public let bundle: PocketBundle
    public let tokenizer: TextTokenizer
    public let engine: Engine
    public let generator: Generator

    public init(bundle: PocketBundle, tokenizer: TextTokenizer, engine: Engine) {
        self.bundle = bundle
        self.tokenizer = tokenizer
        self.engine = engine
        generator = Generator(engine: engine, tokenizer: tokenizer, eosTokenIds: bundle.tokenizer.eosTokenIds)
    }

    /// Plain text, with BOS when the tokenizer wants one (sdk_python/tokenizer.py encode).
    public func encode(_ text: String, addBos: Bool? = nil) -> [Int] {
        let ids = tokenizer.encode(text)
        if addBos ?? bundle.tokenizer.addBosToken, let bos = bundle.tokenizer.bosTokenId, ids.first != bos {
            return [bos] + ids
        }
        return ids
    }

    public func encode(_ prompt: Prompt) throws -> [Int] {
        switch prompt {
        case .plain(let text): return encode(text)
        // The template writes the BOS it wants; adding another would shift the model off its training format.
        case .chat(let messages): return encode(try renderChat(messages), addBos: false)
        }
    }

    public func renderChat(_ messages: [Message], addGenerationPrompt: Bool = true) throws -> String {
        guard let format = bundle.tokenizer.chatFormat else {
            throw PocketLMError.generation(bundle.tokenizer.hasChatTemplate
                ? "this bundle's chat template could not be written as plain strings (manifest tokenizer.chat_format is missing); re-convert it with a newer pocketlm, or use a plain prompt"
                : "this bundle's tokenizer has no chat template; use a plain prompt")
        }
        return try format.render(messages, addGenerationPrompt: addGenerationPrompt)
    }
}

/// The bundle's task presets (manifest `tasks`, from sdk_python/tasks/presets.py).
public struct TaskPresets {
    public static let version = 1
    public let json: [String: Any]

    public init(bundle: PocketBundle) throws {
        guard let tasks = bundle.tasks else {
            throw PocketLMError.task("bundle \(bundle.name) has no task presets (manifest `tasks`); re-convert it with pocketlm >= 0.1")
        }
        let v = tasks["version"] as? Int ?? -1
        if v > TaskPresets.version {
            throw PocketLMError.task("the bundle's task presets are version \(v); this app reads \(TaskPresets.version)")
        }
        json = tasks
    }

    public func preset(_ name: String) throws -> [String: Any] {
        guard let p = json[name] as? [String: Any] else { throw PocketLMError.task("the bundle's presets have no '\(name)' task") }
        return p
    }
}

// MARK: - regular expressions as Python's re uses them (ICU reads the presets' subset alike)

func regex(_ pattern: String, ignoreCase: Bool = false) throws -> NSRegularExpression {
    do {
        return try NSRegularExpression(pattern: pattern, options: ignoreCase ? [.caseInsensitive] : [])
    } catch {
        throw PocketLMError.task("the presets hold a pattern this app cannot read: \(pattern)")
    }
}

/// Python's re.split: the pieces between matches, empty ones kept.
func pySplit(_ re: NSRegularExpression, _ text: String) -> [String] {
    let ns = text as NSString
    var out: [String] = []
    var last = 0
    for m in re.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
        out.append(ns.substring(with: NSRange(location: last, length: m.range.location - last)))
        last = m.range.location + m.range.length
    }
    out.append(ns.substring(from: last))
    return out
}

func contains(_ re: NSRegularExpression, _ text: String) -> Bool {
    re.firstMatch(in: text, range: NSRange(location: 0, length: (text as NSString).length)) != nil
}

// MARK: - translation

public enum Translation {
    static let noSpaceScripts: Set<String> = ["ja", "zh", "th"]

    /// Sentences of one line, by the preset's boundary rule and abbreviation list (sdk_python/tasks/translate.py).
    public static func splitSentences(_ text: String, preset: [String: Any]) throws -> [String] {
        let boundary = try regex(try preset.string("sentence_boundary"))
        let abbreviations = try preset.strings("abbreviations")
        var sentences: [String] = []
        for piece in pySplit(boundary, pyStrip(text)) where !pyStrip(piece).isEmpty {
            if let last = sentences.last,
               abbreviations.contains(where: { hasSuffix(scalars(last), scalars(" " + $0)) || last == $0 }) {
                sentences[sentences.count - 1] = last + " " + pyStrip(piece)
            } else {
                sentences.append(pyStrip(piece))
            }
        }
        return sentences
    }

    public static func buildPrompt(_ preset: [String: Any], text: String, source: String, target: String) throws -> Prompt {
        let names = try preset.object("languages")
        guard let src = names[source] as? String, let tgt = names[target] as? String else {
            throw PocketLMError.task("language pair \(source)-\(target) is not in the presets")
        }
        func fill(_ s: String) -> String {
            s.replacingOccurrences(of: "{source}", with: src).replacingOccurrences(of: "{target}", with: tgt)
        }
        if try preset.string("style") == "chat" {
            return .chat([Message(role: "user", content: fill(try preset.string("instruction")) + "\n\n" + text)])
        }
        var lines = [fill(try preset.string("few_shot_header")), ""]
        for case let ex as [String: Any] in try preset.array("examples") {
            if let a = ex[source] as? String, let b = ex[target] as? String { lines += ["\(src): \(a)", "\(tgt): \(b)", ""] }
        }
        lines += ["\(src): \(text)", "\(tgt):"]
        return .plain(lines.joined(separator: "\n"))
    }

    public static func checkPair(_ preset: [String: Any], source: String, target: String) throws {
        let covered = try preset.object("languages")
        for code in [source, target] where covered[code] == nil {
            throw PocketLMError.task("this model does not cover language '\(code)' (its model card lists: \(covered.keys.sorted().joined(separator: ", "))); translation refused rather than guessed")
        }
        if source == target { throw PocketLMError.task("source and target are both '\(source)'") }
    }

    /// Translate `text` sentence by sentence; `onSentence` is called as each is done.
    public static func translate(_ model: LanguageModel, preset: [String: Any], text: String, source: String, target: String,
                                 onSentence: (String, String) -> Void = { _, _ in }) throws -> String {
        try checkPair(preset, source: source, target: target)
        let joiner = noSpaceScripts.contains(target) ? "" : " "
        let budget = try preset.object("max_new_tokens")
        let sampling = try SamplingParams(json: try preset.object("sampling"))
        let stop = try preset.strings("stop")
        var lines: [String] = []
        for line in text.components(separatedBy: "\n") {
            var done: [String] = []
            for sentence in try splitSentences(line, preset: preset) {
                let ids = try model.encode(try buildPrompt(preset, text: sentence, source: source, target: target))
                let limit = try budget.int("per_source_token") * model.encode(sentence, addBos: false).count + (try budget.int("extra"))
                var out = ""
                try model.generator.generate(ids, maxNewTokens: limit, sampling: sampling, stop: stop) { out += $0 }
                done.append(pyStrip(out))
                onSentence(sentence, pyStrip(out))
            }
            lines.append(done.joined(separator: joiner))
        }
        return lines.joined(separator: "\n")
    }
}

// MARK: - health

public struct Passage: Equatable {
    public let title: String
    public let text: String
    public var score: Double = 0
    public var keywords: [String] = []
}

public struct HealthAnswer {
    public let kind: String  // "emergency", "declined", "answer" or "no_knowledge"
    public let text: String
    public let notice: String
    public var passages: [Passage] = []
    public var rule: String?
    public var mode: String?
}

/// Words as the health retrieval counts them: lower-case letters, no stop words, Porter2 stems.
public enum HealthTerms {
    static let stopwords = Set(("a an and are as at be been but by can could do does for from had has have how i if in into is it its "
        + "me my of on or our should so some than that the their them then there these they this to was we what "
        + "when where which who why will with would you your yours any about after before also am").split(separator: " ").map(String.init))

    public static func terms(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for u in text.lowercased().unicodeScalars {
            if u.value >= 97 && u.value <= 122 { current.unicodeScalars.append(u) } else if !current.isEmpty { words.append(current); current = "" }
        }
        if !current.isEmpty { words.append(current) }
        return words.filter { !stopwords.contains($0) && $0.count > 1 }.map(EnglishStemmer.stem)
    }
}

/// Passages of a markdown file (`## Title` sections), searched with BM25 (rank_bm25's BM25Okapi).
public final class Knowledge {
    public let passages: [Passage]
    let k1 = 1.5, b = 0.75, epsilon = 0.25
    let docFreqs: [[String: Int]]
    let docLen: [Int]
    let avgdl: Double
    var idf: [String: Double] = [:]
    let topics: [Set<String>]

    public init(passages: [Passage]) throws {
        guard !passages.isEmpty else { throw PocketLMError.task("the knowledge file has no '## Title' sections") }
        self.passages = passages
        // The title counts twice: it names what the passage is about.
        let docs = passages.map { HealthTerms.terms("\($0.title) \($0.title) \($0.keywords.joined(separator: " ")) \($0.text)") }
        docFreqs = docs.map { Dictionary($0.map { ($0, 1) }, uniquingKeysWith: +) }
        docLen = docs.map(\.count)
        avgdl = Double(docLen.reduce(0, +)) / Double(docs.count)
        var nd: [String: Int] = [:]
        for f in docFreqs { for w in f.keys { nd[w, default: 0] += 1 } }
        var sum = 0.0
        var negative: [String] = []
        for (w, freq) in nd {
            let v = log(Double(docs.count - freq) + 0.5) - log(Double(freq) + 0.5)
            idf[w] = v
            sum += v
            if v < 0 { negative.append(w) }
        }
        let eps = epsilon * sum / Double(idf.count)
        for w in negative { idf[w] = eps }
        topics = passages.map { Set(HealthTerms.terms("\($0.title) \($0.keywords.joined(separator: " "))")) }
    }

    func scores(_ terms: [String]) -> [Double] {
        var score = [Double](repeating: 0, count: passages.count)
        for q in terms {
            let w = idf[q] ?? 0
            for i in passages.indices {
                let f = Double(docFreqs[i][q] ?? 0)
                score[i] += w * (f * (k1 + 1) / (f + k1 * (1 - b + b * Double(docLen[i]) / avgdl)))
            }
        }
        return score
    }

    public func search(_ query: String, k: Int = 2, minScore: Double = 0) -> [Passage] {
        let terms = HealthTerms.terms(query)
        guard !terms.isEmpty else { return [] }
        let s = scores(terms)
        let named = Set(terms)
        let ranked = passages.indices.filter { s[$0] >= minScore && !topics[$0].isDisjoint(with: named) }
            .enumerated().sorted { s[$0.element] > s[$1.element] || (s[$0.element] == s[$1.element] && $0.offset < $1.offset) }
            .map(\.element).prefix(k)
        return ranked.map { Passage(title: passages[$0].title, text: passages[$0].text, score: (s[$0] * 1000).rounded() / 1000,
                                    keywords: passages[$0].keywords) }
    }

    public static func fromMarkdown(_ text: String) throws -> Knowledge {
        let section = try regex("^## ").withOptions(.anchorsMatchLines)
        let keywordsLine = try regex("^Keywords:(.*)$").withOptions(.anchorsMatchLines)
        let whitespace = try regex("\\s+")
        var passages: [Passage] = []
        for block in pySplit(section, text).dropFirst() {
            let ns = block as NSString
            let newline = ns.range(of: "\n").location
            let title = newline == NSNotFound ? block : ns.substring(to: newline)
            var body = newline == NSNotFound ? "" : ns.substring(from: newline + 1)
            var keywords: [String] = []
            if let m = keywordsLine.firstMatch(in: body, range: NSRange(location: 0, length: (body as NSString).length)) {
                let b = body as NSString
                keywords = b.substring(with: m.range(at: 1)).components(separatedBy: ",").map(pyStrip).filter { !$0.isEmpty }
                body = b.substring(to: m.range.location) + b.substring(from: m.range.location + m.range.length)
            }
            body = pySplit(whitespace, body).filter { !$0.isEmpty }.joined(separator: " ")
            if !body.isEmpty { passages.append(Passage(title: pyStrip(title), text: body, keywords: keywords)) }
        }
        return try Knowledge(passages: passages)
    }
}

extension NSRegularExpression {
    func withOptions(_ options: NSRegularExpression.Options) throws -> NSRegularExpression {
        try NSRegularExpression(pattern: pattern, options: self.options.union(options))
    }
}

/// The health assistant of sdk_python/tasks/health.py: red flags answered with emergency guidance before anything
/// is generated, doses / prescriptions / diagnoses declined, otherwise an answer from the local notes (extractive
/// below 1B parameters), and the not-a-diagnosis notice on every answer. The app keeps no log.
public final class HealthAssistant {
    let preset: [String: Any]
    let knowledge: Knowledge
    let model: LanguageModel?
    public let mode: String
    let notice: String
    let redFlags: [([String: Any], [NSRegularExpression])]
    let declines: [([String: Any], [NSRegularExpression])]

    public init(preset: [String: Any], knowledge: Knowledge, model: LanguageModel? = nil) throws {
        self.preset = preset
        self.knowledge = knowledge
        self.model = model
        mode = try preset.string("answer_mode")
        notice = try preset.string("notice")
        func rules(_ key: String) throws -> [([String: Any], [NSRegularExpression])] {
            try preset.array(key).compactMap { $0 as? [String: Any] }.map { rule in
                (rule, try rule.strings("patterns").map { try regex($0, ignoreCase: true) })
            }
        }
        redFlags = try rules("red_flags")
        declines = try rules("declines")
    }

    /// The rule that answers `question` without the model: ("emergency" | "declined", rule), or nil.
    public func triage(_ question: String) -> (String, [String: Any])? {
        for (kind, rules) in [("emergency", redFlags), ("declined", declines)] {
            for (rule, patterns) in rules where patterns.contains(where: { contains($0, question) }) { return (kind, rule) }
        }
        return nil
    }

    public func ask(_ question: String, onText: (String) -> Void = { _ in }) throws -> HealthAnswer {
        let q = pyStrip(question)
        guard !q.isEmpty else { throw PocketLMError.task("empty question") }
        var answer: HealthAnswer
        if let (kind, rule) = triage(q) {
            let id = rule["id"] as? String
            if kind == "emergency" {
                answer = HealthAnswer(kind: kind, text: "\(try preset.string("emergency")) \(try rule.string("advice"))", notice: notice, rule: id)
            } else {
                answer = HealthAnswer(kind: kind, text: try rule.string("message"), notice: notice, rule: id)
            }
        } else {
            let retrieval = try preset.object("retrieval")
            let passages = knowledge.search(q, k: try retrieval.int("top_k"), minScore: try retrieval.double("min_score"))
            if passages.isEmpty {
                answer = HealthAnswer(kind: "no_knowledge", text: try preset.string("no_knowledge"), notice: notice)
            } else if mode == "generate" {
                answer = HealthAnswer(kind: "answer", text: try generate(q, passages, onText), notice: notice, passages: passages, mode: mode)
            } else {
                answer = HealthAnswer(kind: "answer", text: HealthAssistant.extractAnswer(q, passages), notice: notice, passages: passages, mode: mode)
            }
        }
        if answer.mode != "generate" { onText(answer.text) }  // generated answers were streamed piece by piece
        return answer
    }

    public func buildPrompt(_ question: String, _ passages: [Passage]) throws -> Prompt {
        // The question first, then the instruction and the notes (as the SDK does: measured on SmolLM2).
        let notes = passages.map(\.text).joined(separator: "\n")
        let instruction = try preset.string("instruction")
        if try preset.string("style") == "chat" { return .chat([Message(role: "user", content: "\(question)\n\n\(instruction)\n\n\(notes)")]) }
        return .plain("\(instruction)\n\n\(notes)\n\nQuestion: \(question)\nAnswer:")
    }

    private func generate(_ question: String, _ passages: [Passage], _ onText: (String) -> Void) throws -> String {
        guard let model else { throw PocketLMError.task("answer mode 'generate' needs a model") }
        var out = ""
        try model.generator.generate(try model.encode(try buildPrompt(question, passages)), maxNewTokens: try preset.int("max_new_tokens"),
                                     sampling: try SamplingParams(json: try preset.object("sampling")),
                                     stop: try preset.strings("stop")) { out += $0; onText($0) }
        return pyStrip(out)
    }

    /// The best passage's sentences that share words with the question (its first when none does), at most `maxSentences`.
    public static func extractAnswer(_ question: String, _ passages: [Passage], maxSentences: Int = 3) -> String {
        let asked = Set(HealthTerms.terms(question))
        // swiftlint:disable:next force_try
        let sentences = pySplit(try! NSRegularExpression(pattern: "(?<=[.!?])\\s+"), passages[0].text)
        let overlap = sentences.map { Set(HealthTerms.terms($0)).intersection(asked).count }
        let ranked = sentences.indices.sorted { overlap[$0] > overlap[$1] || (overlap[$0] == overlap[$1] && $0 < $1) }
        var keep = ranked.prefix(maxSentences).filter { overlap[$0] > 0 }.sorted()
        if keep.isEmpty { keep = [0] }
        return keep.map { sentences[$0] }.joined(separator: " ")
    }
}
