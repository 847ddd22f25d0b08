import Foundation
import PocketLMKit
import UIKit

/// Benchmark mode: `xcrun devicectl device process launch … dev.pocketlm.demo --benchmark bundles/NAME
/// --result benchmarks/ID.json --prompt-lengths 32,128 --gen 64 --runs 5 --warmup 1 [--threads 4]` (what
/// `pocketlm profile --device ios` sends). Runs, writes the benchmark-result JSON into Documents, exits.
enum BenchmarkMode {
    static func runIfRequested() -> Bool {
        let settings: BenchmarkSettings?
        do {
            settings = try BenchmarkSettings.parse(arguments: CommandLine.arguments)
        } catch {
            print("pocketlm: \(error)")
            exit(2)
        }
        guard let settings else { return false }
        Task.detached(priority: .userInitiated) {
            do {
                let memory = MemorySampler()
                let demo = try await DemoModel.load(DemoModel.documents.appendingPathComponent(settings.bundle))
                let prompt = try String(contentsOf: Foundation.Bundle.main.url(forResource: "profile_prompt", withExtension: "txt")!, encoding: .utf8)
                let device = await DeviceInfo(
                    kind: "ios", id: UIDevice.current.identifierForVendor?.uuidString ?? "unknown", model: machineModel(),
                    os: "\(UIDevice.current.systemName) \(UIDevice.current.systemVersion)", cpu: "arm64",
                    cores: ProcessInfo.processInfo.activeProcessorCount)
                let result = try Benchmark.run(settings, model: demo.model, loadMs: demo.loadMs, device: device,
                                               threads: settings.threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                               versions: Runtimes.versions, promptText: prompt, memory: memory) { print("pocketlm: \($0)") }
                try Benchmark.write(result, to: DemoModel.documents.appendingPathComponent(settings.result))
                print("pocketlm: wrote \(settings.result)")
                exit(0)
            } catch {
                print("pocketlm: benchmark failed: \(error)")
                exit(1)
            }
        }
        return true
    }

    /// "iPhone16,1" and the like: the hardware model, as benchmark reports name it.
    static func machineModel() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
