package dev.pocketlm.core

/**
 * The Snowball English ("Porter2") stemmer, Snowball 3.1.1 — the one the Python SDK's health
 * retrieval uses (snowballstemmer, BSD-3-Clause). Written from english.sbl's steps in the same
 * cursor/slice terms the Snowball runtime uses, so the two agree word for word; the shared test
 * vectors check it on every word of the health notes and cases and a few thousand more.
 */
object EnglishStemmer {
    private const val V = "aeiouy"
    private const val V_WXY = "aeiouywxY"
    private const val VALID_LI = "cdeghkmnrt"
    private const val AEO = "aeo"

    private val REGION_PREFIXES = listOf("arsen", "commun", "emerg", "gener", "inter", "later", "organ", "past", "univers")
    private val EXCEPTIONS = mapOf(
        "andes" to "andes", "atlas" to "atlas", "bias" to "bias", "cosmos" to "cosmos", "early" to "earli",
        "gently" to "gentl", "howe" to "howe", "idly" to "idl", "news" to "news", "only" to "onli",
        "singly" to "singl", "skies" to "sky", "skis" to "ski", "sky" to "sky", "ugly" to "ugli",
    )
    private val STEP1A = mapOf("ied" to 2, "s" to 3, "ies" to 2, "sses" to 1, "ss" to -1, "us" to -1)
    private val STEP1B = mapOf("" to -1, "ed" to 2, "eed" to 1, "ing" to 3, "edly" to 2, "eedly" to 1, "ingly" to 2)
    private val STEP1B_EED = listOf("succ", "proc", "exc")
    private val STEP1B_ING = mapOf("even" to 2, "cann" to 2, "inn" to 2, "earr" to 2, "herr" to 2, "out" to 2, "y" to 1)
    private val STEP1B_TAIL = mapOf(
        "" to 3, "bb" to 2, "dd" to 2, "ff" to 2, "gg" to 2, "bl" to 1, "mm" to 2, "nn" to 2, "pp" to 2,
        "rr" to 2, "at" to 1, "tt" to 2, "iz" to 1,
    )
    private val STEP2 = mapOf(
        "anci" to 3, "enci" to 2, "ogi" to 14, "li" to 16, "bli" to 12, "abli" to 4, "alli" to 8, "fulli" to 9,
        "lessli" to 15, "ousli" to 10, "entli" to 5, "aliti" to 8, "biliti" to 12, "iviti" to 11, "tional" to 1,
        "ational" to 7, "alism" to 8, "ation" to 7, "ization" to 6, "izer" to 6, "ator" to 7, "iveness" to 11,
        "fulness" to 9, "ousness" to 10, "ogist" to 13,
    )
    private val STEP2_TO = mapOf(
        1 to "tion", 2 to "ence", 3 to "ance", 4 to "able", 5 to "ent", 6 to "ize", 7 to "ate", 8 to "al",
        9 to "ful", 10 to "ous", 11 to "ive", 12 to "ble", 13 to "og", 15 to "less",
    )
    private val STEP3 = mapOf(
        "icate" to 4, "ative" to 6, "alize" to 3, "iciti" to 4, "ical" to 4, "tional" to 1, "ational" to 2,
        "ful" to 5, "ness" to 5,
    )
    private val STEP3_TO = mapOf(1 to "tion", 2 to "ate", 3 to "al", 4 to "ic")
    private val STEP4 = mapOf(
        "ic" to 1, "ance" to 1, "ence" to 1, "able" to 1, "ible" to 1, "ate" to 1, "ive" to 1, "ize" to 1,
        "iti" to 1, "al" to 1, "ism" to 1, "ion" to 2, "er" to 1, "ous" to 1, "ant" to 1, "ent" to 1,
        "ment" to 1, "ement" to 1,
    )

    fun stem(word: String): String = Run(word).stem()

    private class Run(word: String) {
        var current = StringBuilder(word)
        var cursor = 0
        var limit = word.length
        var limitBackward = 0
        var bra = 0
        var ket = 0
        var yFound = false
        var p1 = 0
        var p2 = 0

        fun at(i: Int) = current[i]

        fun sliceFrom(s: String) {
            val adjustment = s.length - (ket - bra)
            current.replace(bra, ket, s)
            limit += adjustment
            if (cursor >= ket) cursor += adjustment else if (cursor > bra) cursor = bra
            ket = bra + s.length
        }

        fun sliceDel() = sliceFrom("")

        /** Longest entry of [table] ending at the cursor (backward); moves the cursor before it. 0 = none. */
        fun findAmongB(table: Map<String, Int>): Int {
            var best: String? = null
            for (s in table.keys) {
                if (cursor - s.length < limitBackward) continue
                if (current.substring(cursor - s.length, cursor) != s) continue
                if (best == null || s.length > best.length) best = s
            }
            if (best == null) return 0
            cursor -= best.length
            return table.getValue(best)
        }

        fun inGroupingB(g: String): Boolean {
            if (cursor <= limitBackward || at(cursor - 1) !in g) return false
            cursor -= 1
            return true
        }

        fun outGroupingB(g: String): Boolean {
            if (cursor <= limitBackward || at(cursor - 1) in g) return false
            cursor -= 1
            return true
        }

        fun goOutGroupingB(g: String): Boolean {
            while (cursor > limitBackward) {
                if (at(cursor - 1) in g) return true
                cursor -= 1
            }
            return false
        }

        fun goOutGrouping(g: String): Boolean {
            while (cursor < limit) {
                if (at(cursor) in g) return true
                cursor += 1
            }
            return false
        }

        fun goInGrouping(g: String): Boolean {
            while (cursor < limit) {
                if (at(cursor) !in g) return true
                cursor += 1
            }
            return false
        }

        fun eqSB(s: String): Boolean {
            if (cursor - s.length < limitBackward || current.substring(cursor - s.length, cursor) != s) return false
            cursor -= s.length
            return true
        }

        fun r1() = p1 <= cursor
        fun r2() = p2 <= cursor

        fun stem(): String {
            EXCEPTIONS[current.toString()]?.let { return it }
            if (limit < 3) return current.toString()
            prelude()
            markRegions()
            limitBackward = cursor
            cursor = limit
            var v = limit - cursor
            step1a(); cursor = limit - v
            v = limit - cursor
            step1b(); cursor = limit - v
            v = limit - cursor
            step1c(); cursor = limit - v
            v = limit - cursor
            step2(); cursor = limit - v
            v = limit - cursor
            step3(); cursor = limit - v
            v = limit - cursor
            step4(); cursor = limit - v
            v = limit - cursor
            step5(); cursor = limit - v
            cursor = limitBackward
            postlude()
            return current.toString()
        }

        fun prelude() {
            yFound = false
            if (limit > 0 && at(0) == '\'') {
                bra = 0; ket = 1; sliceDel()
            }
            cursor = 0
            if (cursor < limit && at(cursor) == 'y') {
                bra = 0; ket = 1; sliceFrom("Y"); yFound = true
            }
            cursor = 0
            // every y after a vowel becomes Y
            while (true) {
                var found = -1
                var c = cursor
                while (c < limit) {
                    if (at(c) in V && c + 1 < limit && at(c + 1) == 'y') { found = c + 1; break }
                    c++
                }
                if (found < 0) break
                bra = found; ket = found + 1
                cursor = found
                sliceFrom("Y")
                yFound = true
            }
            cursor = 0
        }

        fun markRegions() {
            p1 = limit
            p2 = limit
            val start = cursor
            run {
                val prefix = REGION_PREFIXES.filter { current.startsWith(it) && it.length <= limit }.maxByOrNull { it.length }
                if (prefix != null) {
                    cursor = prefix.length
                } else {
                    if (!goOutGrouping(V)) { cursor = start; return }
                    cursor += 1
                    if (!goInGrouping(V)) { cursor = start; return }
                    cursor += 1
                }
                p1 = cursor
                if (!goOutGrouping(V)) { cursor = start; return }
                cursor += 1
                if (!goInGrouping(V)) { cursor = start; return }
                cursor += 1
                p2 = cursor
            }
            cursor = start
        }

        fun shortV(): Boolean {
            val v1 = limit - cursor
            if (outGroupingB(V_WXY) && inGroupingB(V) && outGroupingB(V)) return true
            cursor = limit - v1
            if (outGroupingB(V) && inGroupingB(V) && cursor <= limitBackward) return true
            cursor = limit - v1
            return eqSB("past")
        }

        fun step1a(): Boolean {
            val v1 = limit - cursor
            ket = cursor
            if (findAmongB(mapOf("'" to 1, "'s'" to 1, "'s" to 1)) == 0) {
                cursor = limit - v1
            } else {
                bra = cursor
                sliceDel()
            }
            ket = cursor
            val among = findAmongB(STEP1A)
            if (among == 0) return false
            bra = cursor
            when (among) {
                1 -> sliceFrom("ss")
                2 -> {
                    val v2 = limit - cursor
                    if (cursor - 2 >= limitBackward) {
                        cursor -= 2
                        sliceFrom("i")
                    } else {
                        cursor = limit - v2
                        sliceFrom("ie")
                    }
                }
                3 -> {
                    if (cursor <= limitBackward) return false
                    cursor -= 1
                    if (!goOutGroupingB(V)) return false
                    cursor -= 1
                    sliceDel()
                }
            }
            return true
        }

        fun step1b(): Boolean {
            ket = cursor
            var among = findAmongB(STEP1B)
            bra = cursor
            val v1 = limit - cursor
            var handled = false
            when (among) {
                1 -> {
                    val v2 = limit - cursor
                    if (r1()) {
                        val v3 = limit - cursor
                        if (!(findAmongB(STEP1B_EED.associateWith { 1 }) != 0 && cursor <= limitBackward)) {
                            cursor = limit - v3
                            sliceFrom("ee")
                        }
                    }
                    cursor = limit - v2
                    handled = true
                }
                2 -> {}
                3 -> {
                    among = findAmongB(STEP1B_ING)
                    if (among == 1) {
                        val v4 = limit - cursor
                        if (outGroupingB(V) && cursor <= limitBackward) {
                            cursor = limit - v4
                            bra = cursor
                            sliceFrom("ie")
                            handled = true
                        }
                    } else if (among == 2) {
                        if (cursor <= limitBackward) handled = true
                    }
                }
                else -> handled = true // "" (-1): no ending
            }
            if (handled) return true
            cursor = limit - v1
            val v5 = limit - cursor
            if (!goOutGroupingB(V)) return false
            cursor -= 1
            cursor = limit - v5
            sliceDel()
            ket = cursor
            bra = cursor
            val v6 = limit - cursor
            when (findAmongB(STEP1B_TAIL)) {
                1 -> { sliceFrom("e"); return false }
                2 -> {
                    val v7 = limit - cursor
                    if (inGroupingB(AEO) && cursor <= limitBackward) return false
                    cursor = limit - v7
                }
                else -> {
                    if (cursor != p1) return false
                    val v8 = limit - cursor
                    if (!shortV()) return false
                    cursor = limit - v8
                    sliceFrom("e")
                    return false
                }
            }
            cursor = limit - v6
            ket = cursor
            if (cursor <= limitBackward) return false
            cursor -= 1
            bra = cursor
            sliceDel()
            return true
        }

        fun step1c(): Boolean {
            ket = cursor
            if (cursor > limitBackward && (at(cursor - 1) == 'y' || at(cursor - 1) == 'Y')) cursor -= 1 else return false
            bra = cursor
            if (!outGroupingB(V)) return false
            if (cursor <= limitBackward) return false
            sliceFrom("i")
            return true
        }

        fun step2(): Boolean {
            ket = cursor
            val among = findAmongB(STEP2)
            if (among == 0) return false
            bra = cursor
            if (!r1()) return false
            when (among) {
                14 -> {
                    if (cursor <= limitBackward || at(cursor - 1) != 'l') return false
                    cursor -= 1
                    sliceFrom("og")
                }
                16 -> {
                    if (!inGroupingB(VALID_LI)) return false
                    sliceDel()
                }
                else -> sliceFrom(STEP2_TO.getValue(among))
            }
            return true
        }

        fun step3(): Boolean {
            ket = cursor
            val among = findAmongB(STEP3)
            if (among == 0) return false
            bra = cursor
            if (!r1()) return false
            when (among) {
                5 -> sliceDel()
                6 -> { if (!r2()) return false; sliceDel() }
                else -> sliceFrom(STEP3_TO.getValue(among))
            }
            return true
        }

        fun step4(): Boolean {
            ket = cursor
            val among = findAmongB(STEP4)
            if (among == 0) return false
            bra = cursor
            if (!r2()) return false
            if (among == 1) {
                sliceDel()
            } else {
                if (cursor > limitBackward && (at(cursor - 1) == 's' || at(cursor - 1) == 't')) cursor -= 1 else return false
                sliceDel()
            }
            return true
        }

        fun step5(): Boolean {
            ket = cursor
            val among = findAmongB(mapOf("e" to 1, "l" to 2))
            if (among == 0) return false
            bra = cursor
            if (among == 1) {
                if (!r2()) {
                    if (!r1()) return false
                    val v1 = limit - cursor
                    if (shortV()) return false
                    cursor = limit - v1
                }
                sliceDel()
            } else {
                if (!r2()) return false
                if (cursor <= limitBackward || at(cursor - 1) != 'l') return false
                cursor -= 1
                sliceDel()
            }
            return true
        }

        fun postlude() {
            if (!yFound) return
            for (i in 0 until current.length) if (current[i] == 'Y') current.setCharAt(i, 'y')
        }
    }
}
