import Foundation

/// The Snowball English ("Porter2") stemmer, Snowball 3.1.1 — the one the Python SDK's health retrieval uses
/// (snowballstemmer, BSD-3-Clause). Written from english.sbl's steps in the Snowball runtime's cursor/slice
/// terms (as the Android app's EnglishStemmer.kt), so the three agree word for word; the shared test vectors
/// check it on every word of the health notes and cases and a few thousand more.
public enum EnglishStemmer {
    static let v = Set("aeiouy".utf8)
    static let vWXY = Set("aeiouywxY".utf8)
    static let validLI = Set("cdeghkmnrt".utf8)
    static let aeo = Set("aeo".utf8)

    static let regionPrefixes = ["arsen", "commun", "emerg", "gener", "inter", "later", "organ", "past", "univers"]
    static let exceptions: [String: String] = [
        "andes": "andes", "atlas": "atlas", "bias": "bias", "cosmos": "cosmos", "early": "earli", "gently": "gentl",
        "howe": "howe", "idly": "idl", "news": "news", "only": "onli", "singly": "singl", "skies": "sky", "skis": "ski",
        "sky": "sky", "ugly": "ugli",
    ]
    static let step1aPrefix: [String: Int] = ["'": 1, "'s'": 1, "'s": 1]
    static let step1a: [String: Int] = ["ied": 2, "s": 3, "ies": 2, "sses": 1, "ss": -1, "us": -1]
    static let step1b: [String: Int] = ["": -1, "ed": 2, "eed": 1, "ing": 3, "edly": 2, "eedly": 1, "ingly": 2]
    static let step1bEed: [String: Int] = ["succ": 1, "proc": 1, "exc": 1]
    static let step1bIng: [String: Int] = ["even": 2, "cann": 2, "inn": 2, "earr": 2, "herr": 2, "out": 2, "y": 1]
    static let step1bTail: [String: Int] = [
        "": 3, "bb": 2, "dd": 2, "ff": 2, "gg": 2, "bl": 1, "mm": 2, "nn": 2, "pp": 2, "rr": 2, "at": 1, "tt": 2, "iz": 1,
    ]
    static let step2: [String: Int] = [
        "anci": 3, "enci": 2, "ogi": 14, "li": 16, "bli": 12, "abli": 4, "alli": 8, "fulli": 9, "lessli": 15, "ousli": 10,
        "entli": 5, "aliti": 8, "biliti": 12, "iviti": 11, "tional": 1, "ational": 7, "alism": 8, "ation": 7, "ization": 6,
        "izer": 6, "ator": 7, "iveness": 11, "fulness": 9, "ousness": 10, "ogist": 13,
    ]
    static let step2To: [Int: String] = [
        1: "tion", 2: "ence", 3: "ance", 4: "able", 5: "ent", 6: "ize", 7: "ate", 8: "al", 9: "ful", 10: "ous", 11: "ive",
        12: "ble", 13: "og", 15: "less",
    ]
    static let step3: [String: Int] = [
        "icate": 4, "ative": 6, "alize": 3, "iciti": 4, "ical": 4, "tional": 1, "ational": 2, "ful": 5, "ness": 5,
    ]
    static let step3To: [Int: String] = [1: "tion", 2: "ate", 3: "al", 4: "ic"]
    static let step4: [String: Int] = [
        "ic": 1, "ance": 1, "ence": 1, "able": 1, "ible": 1, "ate": 1, "ive": 1, "ize": 1, "iti": 1, "al": 1, "ism": 1,
        "ion": 2, "er": 1, "ous": 1, "ant": 1, "ent": 1, "ment": 1, "ement": 1,
    ]
    static let step5: [String: Int] = ["e": 1, "l": 2]

    public static func stem(_ word: String) -> String {
        if let e = exceptions[word] { return e }
        var run = Run(Array(word.utf8))
        return run.stem()
    }

    struct Run {
        var current: [UInt8]
        var cursor = 0
        var limit: Int
        var limitBackward = 0
        var bra = 0
        var ket = 0
        var yFound = false
        var p1 = 0
        var p2 = 0

        init(_ word: [UInt8]) {
            current = word
            limit = word.count
        }

        func at(_ i: Int) -> UInt8 { current[i] }

        mutating func sliceFrom(_ s: String) {
            let bytes = Array(s.utf8)
            let adjustment = bytes.count - (ket - bra)
            current.replaceSubrange(bra..<ket, with: bytes)
            limit += adjustment
            if cursor >= ket { cursor += adjustment } else if cursor > bra { cursor = bra }
            ket = bra + bytes.count
        }

        mutating func sliceDel() { sliceFrom("") }

        /// Longest entry of `table` ending at the cursor (backward); moves the cursor before it. 0 = none.
        mutating func findAmongB(_ table: [String: Int]) -> Int {
            var best: [UInt8]?
            var result = 0
            for (s, r) in table {
                let b = Array(s.utf8)
                if cursor - b.count < limitBackward || Array(current[(cursor - b.count)..<cursor]) != b { continue }
                if best == nil || b.count > best!.count { best = b; result = r }
            }
            guard let found = best else { return 0 }
            cursor -= found.count
            return result
        }

        mutating func inGroupingB(_ g: Set<UInt8>) -> Bool {
            if cursor <= limitBackward || !g.contains(at(cursor - 1)) { return false }
            cursor -= 1
            return true
        }

        mutating func outGroupingB(_ g: Set<UInt8>) -> Bool {
            if cursor <= limitBackward || g.contains(at(cursor - 1)) { return false }
            cursor -= 1
            return true
        }

        mutating func goOutGroupingB(_ g: Set<UInt8>) -> Bool {
            while cursor > limitBackward {
                if g.contains(at(cursor - 1)) { return true }
                cursor -= 1
            }
            return false
        }

        mutating func goOutGrouping(_ g: Set<UInt8>) -> Bool {
            while cursor < limit {
                if g.contains(at(cursor)) { return true }
                cursor += 1
            }
            return false
        }

        mutating func goInGrouping(_ g: Set<UInt8>) -> Bool {
            while cursor < limit {
                if !g.contains(at(cursor)) { return true }
                cursor += 1
            }
            return false
        }

        mutating func eqSB(_ s: String) -> Bool {
            let b = Array(s.utf8)
            if cursor - b.count < limitBackward || Array(current[(cursor - b.count)..<cursor]) != b { return false }
            cursor -= b.count
            return true
        }

        func r1() -> Bool { p1 <= cursor }
        func r2() -> Bool { p2 <= cursor }

        mutating func stem() -> String {
            if limit < 3 { return String(decoding: current, as: UTF8.self) }
            prelude()
            markRegions()
            limitBackward = cursor
            cursor = limit
            var saved = limit - cursor
            _ = step1aRun(); cursor = limit - saved
            saved = limit - cursor
            _ = step1bRun(); cursor = limit - saved
            saved = limit - cursor
            _ = step1cRun(); cursor = limit - saved
            saved = limit - cursor
            _ = step2Run(); cursor = limit - saved
            saved = limit - cursor
            _ = step3Run(); cursor = limit - saved
            saved = limit - cursor
            _ = step4Run(); cursor = limit - saved
            saved = limit - cursor
            _ = step5Run(); cursor = limit - saved
            cursor = limitBackward
            postlude()
            return String(decoding: current, as: UTF8.self)
        }

        mutating func prelude() {
            yFound = false
            if limit > 0 && at(0) == UInt8(ascii: "'") { bra = 0; ket = 1; sliceDel() }
            cursor = 0
            if cursor < limit && at(cursor) == UInt8(ascii: "y") { bra = 0; ket = 1; sliceFrom("Y"); yFound = true }
            cursor = 0
            // every y after a vowel becomes Y
            while true {
                var found = -1
                var c = cursor
                while c < limit {
                    if EnglishStemmer.v.contains(at(c)) && c + 1 < limit && at(c + 1) == UInt8(ascii: "y") { found = c + 1; break }
                    c += 1
                }
                if found < 0 { break }
                bra = found; ket = found + 1
                cursor = found
                sliceFrom("Y")
                yFound = true
            }
            cursor = 0
        }

        mutating func markRegions() {
            p1 = limit
            p2 = limit
            let start = cursor
            defer { cursor = start }
            let prefix = EnglishStemmer.regionPrefixes.filter { p in
                let b = Array(p.utf8)
                return b.count <= limit && Array(current[0..<b.count]) == b
            }.max { $0.count < $1.count }
            if let prefix {
                cursor = prefix.utf8.count
            } else {
                if !goOutGrouping(EnglishStemmer.v) { return }
                cursor += 1
                if !goInGrouping(EnglishStemmer.v) { return }
                cursor += 1
            }
            p1 = cursor
            if !goOutGrouping(EnglishStemmer.v) { return }
            cursor += 1
            if !goInGrouping(EnglishStemmer.v) { return }
            cursor += 1
            p2 = cursor
        }

        mutating func shortV() -> Bool {
            let v1 = limit - cursor
            if outGroupingB(EnglishStemmer.vWXY) && inGroupingB(EnglishStemmer.v) && outGroupingB(EnglishStemmer.v) { return true }
            cursor = limit - v1
            if outGroupingB(EnglishStemmer.v) && inGroupingB(EnglishStemmer.v) && cursor <= limitBackward { return true }
            cursor = limit - v1
            return eqSB("past")
        }

        mutating func step1aRun() -> Bool {
            let v1 = limit - cursor
            ket = cursor
            if findAmongB(EnglishStemmer.step1aPrefix) == 0 {
                cursor = limit - v1
            } else {
                bra = cursor
                sliceDel()
            }
            ket = cursor
            let among = findAmongB(EnglishStemmer.step1a)
            if among == 0 { return false }
            bra = cursor
            switch among {
            case 1: sliceFrom("ss")
            case 2:
                let v2 = limit - cursor
                if cursor - 2 >= limitBackward {
                    cursor -= 2
                    sliceFrom("i")
                } else {
                    cursor = limit - v2
                    sliceFrom("ie")
                }
            case 3:
                if cursor <= limitBackward { return false }
                cursor -= 1
                if !goOutGroupingB(EnglishStemmer.v) { return false }
                cursor -= 1
                sliceDel()
            default: break
            }
            return true
        }

        mutating func step1bRun() -> Bool {
            ket = cursor
            var among = findAmongB(EnglishStemmer.step1b)
            bra = cursor
            let v1 = limit - cursor
            var handled = false
            switch among {
            case 1:
                let v2 = limit - cursor
                if r1() {
                    let v3 = limit - cursor
                    if !(findAmongB(EnglishStemmer.step1bEed) != 0 && cursor <= limitBackward) {
                        cursor = limit - v3
                        sliceFrom("ee")
                    }
                }
                cursor = limit - v2
                handled = true
            case 2: break
            case 3:
                among = findAmongB(EnglishStemmer.step1bIng)
                if among == 1 {
                    let v4 = limit - cursor
                    if outGroupingB(EnglishStemmer.v) && cursor <= limitBackward {
                        cursor = limit - v4
                        bra = cursor
                        sliceFrom("ie")
                        handled = true
                    }
                } else if among == 2 {
                    if cursor <= limitBackward { handled = true }
                }
            default: handled = true  // "" (-1): no ending
            }
            if handled { return true }
            cursor = limit - v1
            let v5 = limit - cursor
            if !goOutGroupingB(EnglishStemmer.v) { return false }
            cursor -= 1
            cursor = limit - v5
            sliceDel()
            ket = cursor
            bra = cursor
            let v6 = limit - cursor
            switch findAmongB(EnglishStemmer.step1bTail) {
            case 1:
                sliceFrom("e")
                return false
            case 2:
                let v7 = limit - cursor
                if inGroupingB(EnglishStemmer.aeo) && cursor <= limitBackward { return false }
                cursor = limit - v7
            default:
                if cursor != p1 { return false }
                let v8 = limit - cursor
                if !shortV() { return false }
                cursor = limit - v8
                sliceFrom("e")
                return false
            }
            cursor = limit - v6
            ket = cursor
            if cursor <= limitBackward { return false }
            cursor -= 1
            bra = cursor
            sliceDel()
            return true
        }

        mutating func step1cRun() -> Bool {
            ket = cursor
            if cursor > limitBackward && (at(cursor - 1) == UInt8(ascii: "y") || at(cursor - 1) == UInt8(ascii: "Y")) {
                cursor -= 1
            } else {
                return false
            }
            bra = cursor
            if !outGroupingB(EnglishStemmer.v) { return false }
            if cursor <= limitBackward { return false }
            sliceFrom("i")
            return true
        }

        mutating func step2Run() -> Bool {
            ket = cursor
            let among = findAmongB(EnglishStemmer.step2)
            if among == 0 { return false }
            bra = cursor
            if !r1() { return false }
            switch among {
            case 14:
                if cursor <= limitBackward || at(cursor - 1) != UInt8(ascii: "l") { return false }
                cursor -= 1
                sliceFrom("og")
            case 16:
                if !inGroupingB(EnglishStemmer.validLI) { return false }
                sliceDel()
            default: sliceFrom(EnglishStemmer.step2To[among]!)
            }
            return true
        }

        mutating func step3Run() -> Bool {
            ket = cursor
            let among = findAmongB(EnglishStemmer.step3)
            if among == 0 { return false }
            bra = cursor
            if !r1() { return false }
            switch among {
            case 5: sliceDel()
            case 6:
                if !r2() { return false }
                sliceDel()
            default: sliceFrom(EnglishStemmer.step3To[among]!)
            }
            return true
        }

        mutating func step4Run() -> Bool {
            ket = cursor
            let among = findAmongB(EnglishStemmer.step4)
            if among == 0 { return false }
            bra = cursor
            if !r2() { return false }
            if among == 1 {
                sliceDel()
            } else {
                if cursor > limitBackward && (at(cursor - 1) == UInt8(ascii: "s") || at(cursor - 1) == UInt8(ascii: "t")) {
                    cursor -= 1
                } else {
                    return false
                }
                sliceDel()
            }
            return true
        }

        mutating func step5Run() -> Bool {
            ket = cursor
            let among = findAmongB(EnglishStemmer.step5)
            if among == 0 { return false }
            bra = cursor
            if among == 1 {
                if !r2() {
                    if !r1() { return false }
                    let v1 = limit - cursor
                    if shortV() { return false }
                    cursor = limit - v1
                }
                sliceDel()
            } else {
                if !r2() { return false }
                if cursor <= limitBackward || at(cursor - 1) != UInt8(ascii: "l") { return false }
                cursor -= 1
                sliceDel()
            }
            return true
        }

        mutating func postlude() {
            guard yFound else { return }
            for i in current.indices where current[i] == UInt8(ascii: "Y") { current[i] = UInt8(ascii: "y") }
        }
    }
}
