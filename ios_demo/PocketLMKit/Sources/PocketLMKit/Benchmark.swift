import Foundation

/// What `pocketlm profile --device ios` asks for, as launch arguments (sdk_python/profiling/devices.py run_ios):
/// `--benchmark bundles/NAME --result benchmarks/ID.json --prompt-lengths 32,128 --gen 64 --runs 5 --warmup 1 [--threads 4]`.
/// Paths are relative to the app's Documents folder, where devicectl copies bundles and reads results.
public struct BenchmarkSettings: Equatable {
    public var bundle: String
    public var result: String
    public var promptLengths: [Int]
    public var gen = 64
    public var runs = 5
    public var warmup = 1
    public var threads: Int?

    /// nil when the arguments do not ask for benchmark mode (a normal launch).
    public static func parse(arguments: [String]) throws -> BenchmarkSettings? {
        guard arguments.contains("--benchmark") else { return nil }
        var values: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a.hasPrefix("--") && i + 1 < arguments.count && !arguments[i + 1].hasPrefix("--") {
                values[String(a.dropFirst(2))] = arguments[i + 1]
                i += 2
            } else {
                if a.hasPrefix("--") { values[String(a.dropFirst(2))] = "" }
                i += 1
            }
        }
        func need(_ key: String) throws -> String {
            guard let v = values[key], !v.isEmpty else { throw PocketLMError.benchmark("benchmark mode needs --\(key)") }
            return v
        }
        func int(_ key: String, min: Int) throws -> Int? {
            guard let raw = values[key] else { return nil }
            guard let v = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                throw PocketLMError.benchmark("--\(key) must be an integer, got '\(raw)'")
            }
            guard v >= min else { throw PocketLMError.benchmark("--\(key) must be >= \(min), got \(v)") }
            return v
        }
        let lengths = try need("prompt-lengths").split(separator: ",", omittingEmptySubsequences: false).map { piece -> Int in
            guard let n = Int(piece.trimmingCharacters(in: .whitespaces)) else {
                throw PocketLMError.benchmark("--prompt-lengths must be integers separated by commas, got '\(piece)'")
            }
            guard n >= 1 else { throw PocketLMError.benchmark("prompt lengths must be >= 1, got \(n)") }
            return n
        }
        return BenchmarkSettings(bundle: try need("benchmark"), result: try need("result"), promptLengths: lengths,
                                 gen: try int("gen", min: 1) ?? 64, runs: try int("runs", min: 1) ?? 5,
                                 warmup: try int("warmup", min: 0) ?? 1, threads: try int("threads", min: 1))
    }
}

public struct DeviceInfo {
    public let kind: String, id: String, model: String, os: String, cpu: String, cores: Int
    public init(kind: String, id: String, model: String, os: String, cpu: String, cores: Int) {
        self.kind = kind; self.id = id; self.model = model; self.os = os; self.cpu = cpu; self.cores = cores
    }
}

/// Samples the process's resident memory: task_info's phys_footprint on Apple platforms (what Xcode shows),
/// VmRSS from /proc/self/status on Linux (where the tests run).
public final class MemorySampler {
    private var samples: [(Int, Int)] = []
    private var peak = 0
    private let start = Date()
    private var timer: DispatchSourceTimer?
    private let queue = DispatchQueue(label: "pocketlm.memory")

    public init(intervalMs: Int = 250) {
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now(), repeating: .milliseconds(intervalMs))
        t.setEventHandler { [weak self] in self?.record() }
        t.resume()
        timer = t
    }

    private func record() {
        guard let kb = MemorySampler.currentKb() else { return }
        samples.append((Int(Date().timeIntervalSince(start) * 1000), kb))
        peak = max(peak, kb)
    }

    public func stop() -> (peakKb: Int, samples: [(Int, Int)]) {
        timer?.cancel()
        timer = nil
        return queue.sync {
            record()
            return (peak, samples)
        }
    }

    public static func currentKb() -> Int? {
        #if canImport(Darwin)
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        return kr == KERN_SUCCESS ? Int(info.phys_footprint / 1024) : nil
        #else
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        #endif
    }
}

/// Benchmark mode, the SDK host runner's measurement (sdk_python/profiling/host.py): per prompt length, warm-ups
/// then timed runs of reset → prefill → greedy first token → gen-1 decode steps, on real English text cut to the
/// exact length. The result is the shared benchmark-result JSON, written atomically.
public enum Benchmark {
    public static let format = "pocketlm-benchmark-result"
    public static let version = 1

    /// `length` tokens of `text` (repeated if shorter), with BOS as the tokenizer wants it.
    public static func promptTokens(_ model: LanguageModel, text: String, length: Int) -> [Int] {
        var ids = model.encode(text)
        while ids.count < length { ids += model.encode(text, addBos: false) }
        return Array(ids.prefix(length))
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public static func timedRun(_ engine: Engine, prompt: [Int], gen: Int) throws -> [String: Any] {
        engine.reset()
        let t0 = now()
        let logits = try engine.prefill(prompt)
        let t1 = now()
        var token = Sampler.argmax(logits)
        let t2 = now()
        for _ in 0..<max(gen - 1, 0) { token = Sampler.argmax(try engine.decode(token)) }
        let t3 = now()
        return ["prompt_tokens": prompt.count, "prefill_ms": Double(t1 - t0) / 1e6, "first_token_ms": Double(t2 - t0) / 1e6,
                "decode_tokens": max(gen - 1, 0), "decode_ms": Double(t3 - t2) / 1e6]
    }

    public static func run(_ settings: BenchmarkSettings, model: LanguageModel, loadMs: Double, device: DeviceInfo, threads: Int,
                           versions: [String: String], promptText: String, memory: MemorySampler,
                           progress: (String) -> Void = { _ in }) throws -> [String: Any] {
        let maxContext = model.engine.maxContext
        var runs: [[String: Any]] = []
        do {
            if let n = settings.promptLengths.first(where: { $0 + settings.gen > maxContext }) {
                throw PocketLMError.benchmark("prompt length \(n) + \(settings.gen) generated tokens exceed this bundle's \(maxContext)-token context")
            }
            for n in settings.promptLengths {
                let prompt = promptTokens(model, text: promptText, length: n)
                progress("prompt \(n): \(settings.warmup) warm-up + \(settings.runs) runs")
                for _ in 0..<settings.warmup { _ = try timedRun(model.engine, prompt: prompt, gen: settings.gen) }
                for _ in 0..<settings.runs { runs.append(try timedRun(model.engine, prompt: prompt, gen: settings.gen)) }
            }
        } catch {
            _ = memory.stop()  // the sampler stops however the runs end
            throw error
        }
        let mem = memory.stop()
        return [
            "format": format, "version": version,
            "device": ["kind": device.kind, "id": device.id, "model": device.model, "os": device.os, "cpu": device.cpu, "cores": device.cores],
            "runtime": ["backend": model.bundle.runtime.backend, "threads": threads, "versions": versions],
            "bundle": ["name": model.bundle.name, "program_sha256": model.bundle.programSha256],
            "settings": ["prompt_lengths": settings.promptLengths, "gen_tokens": settings.gen, "runs": settings.runs, "warmup": settings.warmup],
            "load_ms": loadMs,
            "runs": runs,
            "memory": ["peak_rss_kb": mem.peakKb, "samples": mem.samples.map { [$0.0, $0.1] }],
            "energy": ["available": false, "reason": "not measured by the app (Xcode's energy gauge or Instruments measure it)"],
            "operators": NSNull(),
        ]
    }

    /// Write `result` to `url` through a temporary file and a rename: a reader never sees half a result.
    public static func write(_ result: [String: Any], to url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url, options: .atomic)
    }
}
