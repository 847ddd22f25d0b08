// swift-tools-version: 6.0
// Type-checks the iOS app's non-UI files (runtimes, tokenizer adapter, model loading, benchmark mode) with
// swiftc on Linux, against PocketLMKit and stand-ins for CoreML, UIKit, ExecuTorch and Tokenizers.
// ios_demo/tools/typecheck-app.sh copies the app files into Sources/App and builds this package.
import PackageDescription

let package = Package(
    name: "AppTypecheck",
    dependencies: [.package(path: "../../PocketLMKit")],
    targets: [
        .target(name: "CoreML", path: "CoreML"),
        .target(name: "UIKit", path: "UIKit"),
        .target(name: "ExecuTorch", path: "ExecuTorch"),
        .target(name: "Tokenizers", path: "Tokenizers"),
        .target(name: "App", dependencies: ["CoreML", "UIKit", "ExecuTorch", "Tokenizers", "PocketLMKit"], path: "App"),
    ],
    swiftLanguageModes: [.v5]
)
