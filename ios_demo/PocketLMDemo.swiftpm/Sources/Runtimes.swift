import CoreML
import ExecuTorch
import Foundation
import PocketLMKit

/// One entry per runtime a bundle can name (manifest runtime.backend), as the SDK's engine registry.
enum Runtimes {
    static func open(_ bundle: PocketBundle) async throws -> ModelRuntime {
        switch bundle.runtime.backend {
        case "coreml": return try await CoreMLRuntime(bundle)
        case "executorch": return try ExecuTorchRuntime(bundle)  // XNNPACK, Core ML or MPS delegate
        case "litert": throw PocketLMError.bundle("LiteRT bundles run in the Android app; convert with --target coreml or executorch for iOS")
        default: throw PocketLMError.bundle("this app cannot run '\(bundle.runtime.backend)' bundles (it runs: coreml, executorch)")
        }
    }

    static let versions = ["executorch-ios": "1.5.1", "pocketlm-demo": "0.1.0"]
}

/// A stateful Core ML bundle (docs/coreml.md): the KV cache is the model's MLState; each call passes
/// input_ids [1, T] int32 and the additive causal mask [1, 1, T, start + T] float16, and gets the logits of
/// the last token — what sdk_python/engines/coreml_engine.py does on a Mac.
final class CoreMLRuntime: ModelRuntime {
    static let maskMin: Float16 = -30000  // the converter's MASK_MIN: hidden positions
    private let model: MLModel
    private var state: MLState

    init(_ bundle: PocketBundle) async throws {
        let package = bundle.file(bundle.runtime.program)
        let caches = try FileManager.default.url(for: .cachesDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
        // Compiling an .mlpackage takes seconds to minutes: keep the compiled model per program sha256.
        let compiled = caches.appendingPathComponent("\(bundle.programSha256).mlmodelc")
        if !FileManager.default.fileExists(atPath: compiled.path) {
            let temporary = try await MLModel.compileModel(at: package)
            try? FileManager.default.removeItem(at: compiled)
            try FileManager.default.moveItem(at: temporary, to: compiled)
        }
        let config = MLModelConfiguration()
        switch bundle.manifest["runtime"].flatMap({ ($0 as? [String: Any])?["compute_units"] as? String }) ?? "cpu_and_ne" {
        case "all": config.computeUnits = .all
        case "cpu_and_gpu": config.computeUnits = .cpuAndGPU
        case "cpu_only": config.computeUnits = .cpuOnly
        default: config.computeUnits = .cpuAndNeuralEngine
        }
        model = try MLModel(contentsOf: compiled, configuration: config)
        state = model.makeState()
    }

    func forward(_ tokens: [Int], start: Int) throws -> [Float] {
        if start == 0 { state = model.makeState() }  // a new conversation: a fresh cache
        let count = tokens.count, keys = start + count
        let ids = try MLMultiArray(shape: [1, NSNumber(value: count)], dataType: .int32)
        for (i, t) in tokens.enumerated() { ids[i] = NSNumber(value: Int32(t)) }
        let mask = try MLMultiArray(shape: [1, 1, NSNumber(value: count), NSNumber(value: keys)], dataType: .float16)
        mask.withUnsafeMutableBufferPointer(ofType: Float16.self) { buffer, _ in
            for q in 0..<count { for k in 0..<keys { buffer[q * keys + k] = k <= start + q ? 0 : CoreMLRuntime.maskMin } }
        }
        let inputs = try MLDictionaryFeatureProvider(dictionary: ["input_ids": ids, "causal_mask": mask])
        let out = try model.prediction(from: inputs, using: state)
        guard let logits = out.featureValue(for: "logits")?.multiArrayValue else {
            throw PocketLMError.bundle("the Core ML program returned no logits")
        }
        let vocab = logits.shape.last!.intValue
        let offset = logits.count - vocab  // the last token's row
        return (0..<vocab).map { logits[offset + $0].floatValue }
    }
}

/// A pocketlm .pte through ExecuTorch's Module: forward(tokens [1, T] int64, input_pos [1] int64) → logits
/// [1, vocab] (manifest runtime.methods.forward); the KV cache lives inside the program. A bundle that lists
/// "prefill" (attention in XNNPACK, 2x faster on long prompts) gets its prompt chunks there:
/// prefill(tokens [1, T], kv_positions [start + T]) shares forward's cache.
final class ExecuTorchRuntime: ModelRuntime {
    private let module: Module
    private let hasPrefill: Bool

    init(_ bundle: PocketBundle) throws {
        module = Module(filePath: bundle.file(bundle.runtime.program).path)
        try module.load("forward")
        hasPrefill = bundle.runtime.methods.contains("prefill")
        if hasPrefill { try module.load("prefill") }
    }

    func forward(_ tokens: [Int], start: Int) throws -> [Float] {
        let ids = Tensor<Int64>(tokens.map(Int64.init), shape: [1, tokens.count])
        let outputs: [Value]
        if tokens.count > 1 && hasPrefill {
            let keys = start + tokens.count
            outputs = try module.execute("prefill", [ids, Tensor<Int64>((0..<keys).map(Int64.init), shape: [keys])])
        } else {
            outputs = try module.forward([ids, Tensor<Int64>([Int64(start)], shape: [1])])
        }
        guard let logits: Tensor<Float> = outputs.first?.tensor() else {
            throw PocketLMError.bundle("the ExecuTorch program returned no logits tensor")
        }
        return logits.scalars()
    }
}
