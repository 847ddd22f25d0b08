// Stand-in for the few signatures of this Apple / ExecuTorch / swift-transformers module that the app's
// non-UI files call, written from its documentation so swiftc can type-check those files on Linux
// (ios_demo/tools/typecheck-app.sh). Not the library: a wrong stub would hide a wrong call.
import Foundation

@MainActor public final class UIDevice {
    public static let current = UIDevice()
    public var identifierForVendor: UUID? { nil }
    public var systemName: String { "iOS" }
    public var systemVersion: String { "18.0" }
}
