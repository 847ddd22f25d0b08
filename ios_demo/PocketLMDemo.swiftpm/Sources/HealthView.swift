import PocketLMKit
import SwiftUI

/// The health assistant: red flags get emergency guidance (in red, before anything is generated), doses and
/// diagnoses are declined, other questions are answered from the local notes, and every answer ends with the
/// not-a-diagnosis notice. Questions stay on the phone; nothing is logged.
struct HealthView: View {
    let demo: DemoModel
    @State private var question = ""
    @State private var streaming = ""
    @State private var answer: HealthAnswer?
    @State private var error = ""

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            TextField("Your question", text: $question, axis: .vertical).textFieldStyle(.roundedBorder)
            Button("Ask", action: ask).disabled(question.trimmingCharacters(in: .whitespaces).isEmpty)
            if let answer {
                Text(answer.text).foregroundStyle(answer.kind == "emergency" ? Color.red : Color.primary)
                if !answer.passages.isEmpty {
                    Text("From the notes: \(answer.passages.map(\.title).joined(separator: ", "))").font(.caption)
                }
                Text(answer.notice).font(.caption).foregroundStyle(.secondary)
            } else {
                Text(streaming)
            }
            if !error.isEmpty { Text(error).foregroundStyle(.red) }
            Spacer()
        }
        .padding()
    }

    private func ask() {
        answer = nil
        streaming = ""
        error = ""
        let q = question
        Task.detached {
            do {
                let a = try demo.healthAssistant().ask(q) { piece in Task { @MainActor in streaming += piece } }
                await MainActor.run { answer = a }
            } catch {
                let message = "\(error)"
                await MainActor.run { self.error = message }
            }
        }
    }
}
