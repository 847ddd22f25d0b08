import Foundation
import XCTest
@testable import PocketLMKit

/// The kit's logic against the Python SDK's answers on the same inputs (shared vectors).
final class ContractTests: XCTestCase {
    func testBundles() throws {
        for c in try Vectors.array("bundles.json") {
            let url = URL(fileURLWithPath: c["path"] as! String)
            if let phrase = c["error_contains"] as? String {
                XCTAssertThrowsError(try PocketBundle.open(url, hasher: sha256sum), c["name"] as! String) { error in
                    XCTAssertTrue("\(error)".contains(phrase), "\(error) lacks \(phrase)")
                }
            } else {
                let b = try PocketBundle.open(url, hasher: sha256sum)
                XCTAssertNotNil(b.tokenizer.chatFormat, "a new bundle carries tokenizer.chat_format")
                XCTAssertEqual(b.programSha256.count, 64)
                XCTAssertNotNil(try TaskPresets(bundle: b).preset("health"))
            }
        }
    }

    func testChatFormats() throws {
        for t in try Vectors.array("chat.json") {
            let format = try ChatFormat(json: t["format"] as! [String: Any])
            for c in t["cases"] as! [[String: Any]] {
                XCTAssertEqual(try format.render(messages(c["messages"]), addGenerationPrompt: c["add_generation_prompt"] as! Bool),
                               c["expected"] as! String, t["name"] as! String)
            }
            for c in t["errors"] as! [[String: Any]] {
                XCTAssertThrowsError(try format.render(messages(c["messages"]))) { error in
                    XCTAssertTrue("\(error)".contains(c["error_contains"] as! String), "\(error)")
                }
            }
        }
    }

    func testSampling() throws {
        for c in try Vectors.array("sampling.json") {
            let p = c["params"] as! [String: Any]
            let params = try SamplingParams(temperature: (p["temperature"] as! NSNumber).doubleValue, topK: p["top_k"] as! Int,
                                            topP: (p["top_p"] as! NSNumber).doubleValue,
                                            repetitionPenalty: (p["repetition_penalty"] as! NSNumber).doubleValue, seed: 1)
            let sampler = Sampler(params)
            let history = ints(c["history"])
            let logits = floats(c["logits"])
            let penalized = sampler.penalized(logits, history: history)
            XCTAssertEqual(penalized, floats(c["penalized"]))
            if params.temperature == 0 {
                XCTAssertEqual(sampler.sample(logits, history: history), c["greedy"] as! Int)
            } else {
                let expected = doubles(c["probs"])
                let got = sampler.probabilities(penalized)
                for i in expected.indices { XCTAssertEqual(expected[i], got[i], accuracy: 1e-5, "prob[\(i)]") }
                for _ in 0..<200 { XCTAssertGreaterThan(expected[sampler.sample(logits, history: history)], 0) }
            }
        }
    }

    func testStopStrings() throws {
        for c in try Vectors.array("stop.json") {
            let m = StopMatcher(strings(c["stops"]))
            let pieces = strings(c["pieces"])
            for (i, expected) in (c["outputs"] as! [[Any]]).enumerated() {
                let (text, stopped) = m.feed(pieces[i])
                XCTAssertEqual(text, expected[0] as! String)
                XCTAssertEqual(stopped, expected[1] as! Bool)
            }
            XCTAssertEqual(m.flush(), c["flush"] as! String)
        }
    }

    func testGeneration() throws {
        let g = try Vectors.object("generation.json")
        let model = try hashModel(bundlePath: g["bundle"] as! String, maxContext: g["max_context"] as! Int, maxPrefill: g["max_prefill"] as! Int)
        for c in g["cases"] as! [[String: Any]] {
            var text = ""
            let stats = try model.generator.generate(
                ints(c["prompt_ids"]), maxNewTokens: c["max_new_tokens"] as! Int,
                sampling: try SamplingParams(repetitionPenalty: (c["repetition_penalty"] as! NSNumber).doubleValue),
                stop: strings(c["stop"])) { text += $0 }
            XCTAssertEqual(text, c["text"] as! String)
            XCTAssertEqual(stats.tokens, ints(c["tokens"]))
            XCTAssertEqual(stats.finishReason, c["finish_reason"] as! String)
        }
    }

    func testPrediction() throws {
        let p = try Vectors.object("predict.json")
        let model = try hashModel(bundlePath: p["bundle"] as! String, maxContext: p["max_context"] as! Int, maxPrefill: p["max_prefill"] as! Int)
        let predictor = TextPredictor(model: model, beam: p["beam"] as! Int, maxWordTokens: p["max_word_tokens"] as! Int, timeBudgetSeconds: 1e9)
        for c in p["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            let got = try predictor.predict(text, k: 3)
            XCTAssertEqual(got.partial, c["partial"] as! String, text)
            XCTAssertEqual(got.words, strings(c["words"]), text)
            for (s, want) in zip(got.suggestions, doubles(c["logprobs"])) { XCTAssertEqual(s.logprob, want, accuracy: 1e-9, text) }
            XCTAssertEqual(got.reusedTokens, c["reused"] as! Int, text)
            XCTAssertEqual(got.newTokens, c["new"] as! Int, text)
            XCTAssertEqual(got.steps, c["steps"] as! Int, text)
        }
    }

    func testTranslation() throws {
        for t in try Vectors.array("translate.json") {
            let preset = t["preset"] as! [String: Any]
            for c in t["cases"] as! [[String: Any]] {
                let sentences = try Translation.splitSentences(c["text"] as! String, preset: preset)
                XCTAssertEqual(sentences, strings(c["sentences"]))
                let prompt = try Translation.buildPrompt(preset, text: sentences[0], source: c["source"] as! String, target: c["target"] as! String)
                if let plain = c["prompt"] as? String {
                    XCTAssertEqual(prompt, .plain(plain))
                } else {
                    XCTAssertEqual(prompt, .chat(messages(c["prompt"])))
                }
            }
            for c in t["refused"] as! [[String: Any]] {
                XCTAssertThrowsError(try Translation.checkPair(preset, source: c["source"] as! String, target: c["target"] as! String)) { error in
                    XCTAssertTrue("\(error)".contains(c["error_contains"] as! String), "\(error)")
                }
            }
        }
    }

    func testHealth() throws {
        let h = try Vectors.object("health.json")
        let knowledge = try Knowledge.fromMarkdown(h["knowledge"] as! String)
        let assistant = try HealthAssistant(preset: h["preset"] as! [String: Any], knowledge: knowledge)
        XCTAssertEqual(assistant.mode, "extractive")
        for c in h["cases"] as! [[String: Any]] {
            let q = c["question"] as! String
            if let error = c["error"] as? String {
                XCTAssertThrowsError(try assistant.ask(q)) { XCTAssertEqual("\($0)", error) }
                continue
            }
            let a = try assistant.ask(q)
            XCTAssertEqual(a.kind, c["kind"] as! String, q)
            XCTAssertEqual(a.rule, c["rule"] as? String, q)
            XCTAssertEqual(a.text, c["text"] as! String, q)
            XCTAssertEqual(a.notice, c["notice"] as! String, q)
            XCTAssertEqual(a.passages.map(\.title), strings(c["passages"]), q)
            for (p, s) in zip(a.passages, doubles(c["scores"])) { XCTAssertEqual(p.score, s, accuracy: 1.1e-3, q) }
        }
        let question = h["prompt_question"] as! String
        XCTAssertEqual(try assistant.buildPrompt(question, knowledge.search(question, k: 2, minScore: 1)), .chat(messages(h["prompt"])))
    }

    func testStems() throws {
        let s = try Vectors.object("stems.json")
        let stems = s["stems"] as! [String: String]
        let wrong = stems.filter { EnglishStemmer.stem($0.key) != $0.value }.map { "\($0.key) -> \(EnglishStemmer.stem($0.key)) (Snowball: \($0.value))" }
        XCTAssertTrue(wrong.isEmpty, "\(wrong.count) of \(stems.count) words stem differently: \(wrong.prefix(20))")
        for c in s["terms"] as! [[String: Any]] { XCTAssertEqual(HealthTerms.terms(c["text"] as! String), strings(c["terms"])) }
    }

    func testBenchmarkSettings() throws {
        for c in try Vectors.array("ios_benchmark_settings.json") {
            let args = strings(c["arguments"])
            if let phrase = c["error_contains"] as? String {
                XCTAssertThrowsError(try BenchmarkSettings.parse(arguments: args)) { XCTAssertTrue("\($0)".contains(phrase), "\($0)") }
                continue
            }
            guard let want = c["expect"] as? [String: Any] else {
                XCTAssertNil(try BenchmarkSettings.parse(arguments: args))
                continue
            }
            let got = try XCTUnwrap(try BenchmarkSettings.parse(arguments: args))
            XCTAssertEqual(got, BenchmarkSettings(bundle: want["bundle"] as! String, result: want["result"] as! String,
                                                  promptLengths: ints(want["prompt_lengths"]), gen: want["gen"] as! Int,
                                                  runs: want["runs"] as! Int, warmup: want["warmup"] as! Int, threads: want["threads"] as? Int))
        }
    }

    /// Benchmark mode end to end on the hash engine; the Python test checks the file against the schema and folds it.
    func testBenchmarkRunWritesResult() throws {
        let b = try Vectors.object("benchmark_run.json")
        let model = try hashModel(bundlePath: b["bundle"] as! String, maxContext: 64, maxPrefill: 16)
        let settings = try XCTUnwrap(try BenchmarkSettings.parse(arguments: [
            "--benchmark", b["bundle"] as! String, "--result", "r.json", "--prompt-lengths", "8,20", "--gen", "4", "--runs", "3", "--warmup", "1",
        ]))
        let device = DeviceInfo(kind: "ios", id: "linux-test", model: "swift test", os: ProcessInfo.processInfo.operatingSystemVersionString,
                                cpu: "x86_64", cores: ProcessInfo.processInfo.activeProcessorCount)
        let result = try Benchmark.run(settings, model: model, loadMs: 12.5, device: device, threads: 1, versions: ["pocketlm-demo": "test"],
                                       promptText: b["prompt_text"] as! String, memory: MemorySampler(intervalMs: 5))
        XCTAssertEqual((result["runs"] as! [[String: Any]]).count, 6)
        XCTAssertGreaterThan((result["memory"] as! [String: Any])["peak_rss_kb"] as! Int, 0)
        try Benchmark.write(result, to: URL(fileURLWithPath: b["ios_result"] as! String))
        var tooLong = settings
        tooLong.promptLengths = [62]
        XCTAssertThrowsError(try Benchmark.run(tooLong, model: model, loadMs: 1, device: device, threads: 1, versions: [:], promptText: "x",
                                               memory: MemorySampler())) { XCTAssertTrue("\($0)".contains("exceed this bundle's 64-token context")) }
    }

    func testEngineChunksAndChecksRoom() throws {
        let engine = Engine(runtime: HashRuntime(maxContext: 10, vocab: 50), maxContext: 10, maxPrefill: 4)
        _ = try engine.prefill(Array(0..<9))
        XCTAssertEqual(engine.position, 9)
        XCTAssertThrowsError(try engine.prefill([1, 2])) { XCTAssertTrue("\($0)".contains("2 more tokens do not fit")) }
        try engine.rewind(3)
        XCTAssertEqual(engine.position, 3)
        XCTAssertThrowsError(try engine.rewind(5))
    }
}
