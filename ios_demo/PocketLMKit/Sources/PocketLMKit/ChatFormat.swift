import Foundation

public struct Message: Equatable {
    public let role: String
    public let content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The bundle's chat template as plain strings (manifest `tokenizer.chat_format`), rendered as
/// sdk_python/chat_format.py renders it. The converter wrote it only after checking that it renders
/// exactly like the Jinja template.
public struct ChatFormat {
    public static let roles: Set<String> = ["system", "user", "assistant"]

    let start: String
    let defaultSystem: String?
    let systemStyle: String
    let systemSeparator: String
    let roleStrings: [String: (String, String)]
    let generationPrompt: String
    let trimContent: Bool

    init(json: [String: Any]) throws {
        start = try json.string("start")
        defaultSystem = json["default_system"] as? String
        systemStyle = try json.string("system_style")
        systemSeparator = json["system_separator"] as? String ?? ""
        var roles: [String: (String, String)] = [:]
        for (role, pair) in try json.object("roles") {
            guard let p = pair as? [String], p.count == 2 else { throw JSONField.missing("roles.\(role)") }
            roles[role] = (p[0], p[1])
        }
        roleStrings = roles
        generationPrompt = try json.string("generation_prompt")
        trimContent = json["trim_content"] as? Bool ?? false
    }

    public func render(_ messages: [Message], addGenerationPrompt: Bool = true) throws -> String {
        var list = messages
        for m in list where !ChatFormat.roles.contains(m.role) {
            throw PocketLMError.generation("chat messages must have a role (system, user, assistant) and content")
        }
        var hasSystem = list.first?.role == "system"
        if list.dropFirst().contains(where: { $0.role == "system" }) {
            throw PocketLMError.generation("a system message may only come first")
        }
        if hasSystem && systemStyle == "none" {
            throw PocketLMError.generation("this model's chat template has no system role")
        }
        if !hasSystem, let d = defaultSystem {
            list.insert(Message(role: "system", content: d), at: 0)
            hasSystem = true
        }
        if hasSystem && systemStyle == "merged" {
            let rest = Array(list.dropFirst())
            guard let first = rest.first, first.role == "user" else {
                throw PocketLMError.generation("this model's template needs a user message after the system message")
            }
            let content = trimContent ? pyStrip(first.content) : first.content
            list = [Message(role: "user", content: list[0].content + systemSeparator + content)] + rest.dropFirst()
        }
        var out = start
        for m in list {
            guard let (open, close) = roleStrings[m.role] else {
                throw PocketLMError.generation("this model's chat template has no \(m.role) role")
            }
            out += open + (trimContent ? pyStrip(m.content) : m.content) + close
        }
        if addGenerationPrompt { out += generationPrompt }
        return out
    }
}

/// Python's str.strip(): whitespace at both ends, by Unicode scalar.
public func pyStrip(_ s: String) -> String {
    let scalars = Array(s.unicodeScalars)
    var lo = 0
    var hi = scalars.count
    while lo < hi && scalars[lo].properties.isWhitespace { lo += 1 }
    while hi > lo && scalars[hi - 1].properties.isWhitespace { hi -= 1 }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars[lo..<hi])
    return String(view)
}
