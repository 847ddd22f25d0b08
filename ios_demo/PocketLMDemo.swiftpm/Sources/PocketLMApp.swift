import SwiftUI

@main
struct PocketLMApp: App {
    /// Launched with --benchmark …: benchmark mode runs instead of the screens, then the app exits.
    private let benchmarking = BenchmarkMode.runIfRequested()

    var body: some Scene {
        WindowGroup {
            if benchmarking {
                Text("pocketlm benchmark running…").padding()
            } else {
                ContentView()
            }
        }
    }
}
