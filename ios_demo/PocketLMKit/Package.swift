// swift-tools-version: 6.0
// PocketLMKit: everything of the iOS demo that is not UI or a runtime call — bundle reading,
// chat format, sampling, streaming generation, task prompts and rules, text prediction, benchmark
// results. Plain Swift + Foundation, so it builds and tests with `swift test` on Linux too
// (see ../README.md), against vectors the Python SDK writes.
import PackageDescription

let package = Package(
    name: "PocketLMKit",
    platforms: [.iOS(.v18), .macOS(.v15)],
    products: [
        .library(name: "PocketLMKit", targets: ["PocketLMKit"]),
    ],
    targets: [
        .target(name: "PocketLMKit"),
        .testTarget(name: "PocketLMKitTests", dependencies: ["PocketLMKit"]),
    ],
    swiftLanguageModes: [.v5]
)
