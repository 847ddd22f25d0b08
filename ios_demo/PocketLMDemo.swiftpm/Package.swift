// swift-tools-version: 6.0
// The pocketlm iOS demo as an app package: open this folder in Xcode 16 (or Swift Playgrounds) and run.
// AppleProductTypes exists only in Xcode; the logic this app runs lives in ../PocketLMKit, which builds
// and tests anywhere Swift runs.
import AppleProductTypes
import PackageDescription

let package = Package(
    name: "PocketLMDemo",
    platforms: [.iOS("18.0")],
    products: [
        .iOSApplication(
            name: "PocketLM",
            targets: ["PocketLMDemo"],
            bundleIdentifier: "dev.pocketlm.demo",  // sdk_python/profiling/devices.py IOS_BUNDLE_ID
            teamIdentifier: "",
            displayVersion: "0.1.0",
            bundleVersion: "1",
            appIcon: .placeholder(icon: .chatMessage),
            accentColor: .presetColor(.indigo),
            supportedDeviceFamilies: [.pad, .phone],
            supportedInterfaceOrientations: [.portrait, .landscapeRight, .landscapeLeft],
            // Documents shared in the Files app: drop bundles into On My iPhone > PocketLM > bundles.
            additionalInfoPlistContentFilePath: "Info-extra.plist"
        ),
    ],
    dependencies: [
        .package(path: "../PocketLMKit"),
        // Tokenizers: the bundle's tokenizer.json, read by Hugging Face's Swift implementation.
        .package(url: "https://github.com/huggingface/swift-transformers", from: "1.0.0"),
        // The ExecuTorch runtime matching the Python side (constraints.txt executorch==1.5.1).
        .package(url: "https://github.com/pytorch/executorch", branch: "swiftpm-1.5.1"),
    ],
    targets: [
        .executableTarget(
            name: "PocketLMDemo",
            dependencies: [
                "PocketLMKit",
                .product(name: "Tokenizers", package: "swift-transformers"),
                .product(name: "executorch", package: "executorch"),
                .product(name: "backend_xnnpack", package: "executorch"),
                .product(name: "backend_coreml", package: "executorch"),
                .product(name: "backend_mps", package: "executorch"),
                .product(name: "kernels_llm", package: "executorch"),  // llama::custom_sdpa / update_cache
                .product(name: "kernels_optimized", package: "executorch"),
                .product(name: "kernels_quantized", package: "executorch"),  // quantized embeddings
                .product(name: "kernels_torchao", package: "executorch"),
            ],
            path: "Sources",
            resources: [.copy("Resources/health_knowledge.md"), .copy("Resources/profile_prompt.txt")],
            // ExecuTorch's kernels and backends register themselves from static initializers: keep them linked.
            linkerSettings: [.unsafeFlags(["-all_load"])]
        ),
    ],
    swiftLanguageModes: [.v5]
)
