// Stand-in for the few signatures of this Apple / ExecuTorch / swift-transformers module that the app's
// non-UI files call, written from its documentation so swiftc can type-check those files on Linux
// (ios_demo/tools/typecheck-app.sh). Not the library: a wrong stub would hide a wrong call.
import Foundation

public enum MLComputeUnits { case all, cpuAndGPU, cpuOnly, cpuAndNeuralEngine }
public final class MLModelConfiguration { public var computeUnits: MLComputeUnits = .all; public init() {} }
public final class MLState {}
public enum MLMultiArrayDataType { case int32, float16, float32 }
public final class MLMultiArray {
    public init(shape: [NSNumber], dataType: MLMultiArrayDataType) throws {}
    public var shape: [NSNumber] { [] }
    public var count: Int { 0 }
    public subscript(index: Int) -> NSNumber { get { 0 } set {} }
    public func withUnsafeMutableBufferPointer<S, R>(ofType: S.Type, _ body: (UnsafeMutableBufferPointer<S>, [Int]) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer<S>(start: nil, count: 0), [])
    }
}
public final class MLFeatureValue { public var multiArrayValue: MLMultiArray? { nil } }
public protocol MLFeatureProvider { func featureValue(for name: String) -> MLFeatureValue? }
public final class MLDictionaryFeatureProvider: MLFeatureProvider {
    public init(dictionary: [String: Any]) throws {}
    public func featureValue(for name: String) -> MLFeatureValue? { nil }
}
public final class MLModel {
    public init(contentsOf url: URL, configuration: MLModelConfiguration) throws {}
    public static func compileModel(at url: URL) async throws -> URL { url }
    public func makeState() -> MLState { MLState() }
    public func prediction(from input: MLFeatureProvider, using state: MLState) throws -> MLFeatureProvider { input }
}
