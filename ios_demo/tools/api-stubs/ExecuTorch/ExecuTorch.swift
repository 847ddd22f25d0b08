// Stand-in for the few signatures of this Apple / ExecuTorch / swift-transformers module that the app's
// non-UI files call, written from its documentation so swiftc can type-check those files on Linux
// (ios_demo/tools/typecheck-app.sh). Not the library: a wrong stub would hide a wrong call.
import Foundation

public final class Tensor<T> {
    public init(_ scalars: [T], shape: [Int]) {}
    public func scalars() -> [T] { [] }
}
public final class Value { public func tensor<T>() -> Tensor<T>? { nil } }
public final class Module {
    public init(filePath: String) {}
    public func load(_ method: String) throws {}
    public func forward(_ inputs: [AnyObject]) throws -> [Value] { [] }
    public func execute(_ method: String, _ inputs: [AnyObject]) throws -> [Value] { [] }
}
