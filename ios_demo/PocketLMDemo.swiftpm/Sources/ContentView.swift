import PocketLMKit
import SwiftUI

/// Bundle picker, then the four tasks as tabs. Models load off the main thread.
struct ContentView: View {
    @State private var demo: DemoModel?
    @State private var status = "Choose a bundle (Files app: On My iPhone › PocketLM › bundles)"
    @State private var bundles = DemoModel.bundles()

    var body: some View {
        NavigationStack {
            VStack(alignment: .leading) {
                Text(status).font(.footnote).padding(.horizontal)
                if let demo {
                    TabView {
                        ChatView(demo: demo).tabItem { Label("Chat", systemImage: "bubble.left.and.bubble.right") }
                        PredictView(demo: demo).tabItem { Label("Predict", systemImage: "keyboard") }
                        TranslateView(demo: demo).tabItem { Label("Translate", systemImage: "character.book.closed") }
                        HealthView(demo: demo).tabItem { Label("Health", systemImage: "cross.case") }
                    }
                } else {
                    List(bundles, id: \.self) { url in
                        Button(url.lastPathComponent) { open(url) }
                    }
                    .refreshable { bundles = DemoModel.bundles() }
                }
            }
            .navigationTitle("pocketlm")
        }
    }

    private func open(_ url: URL) {
        status = "Loading \(url.lastPathComponent) (checking every file's sha256)…"
        Task {
            do {
                let loaded = try await DemoModel.load(url)
                demo = loaded
                let r = loaded.bundle.runtime
                status = "\(loaded.bundle.name): \(r.backend)/\(r.delegate ?? "-"), loaded in \(Int(loaded.loadMs)) ms"
            } catch {
                status = "\(error)"
            }
        }
    }
}
