// SwiftSKD against ONNX Runtime on the official student networks (`../shared/peers`: restormer-s, uformer-s and
// drsformer-s exported at 1×3×512×512, and `ort_time.py`), interleaved in one run: round by round, SwiftSKD's
// inferences in this process, then ONNX Runtime's in a fresh `python3 ort_time.py --runs N` (which builds its
// session and warms up before its timed runs). On a shared machine only the ratio, pair by pair, means
// much; the medians of both and of the ratios are reported, with each side's peak RSS. Each round times `runs`
// inferences on both sides (ort_time.py's default is 3) and compares their medians: steady state on both sides.

import Foundation
import SKDModels
import SKDTensor

/// The presets that have an exported peer, and the file name of each.
let peerPresets: [(preset: String, file: String)] = [
    ("restormer-s", "restormer-s-512.onnx"), ("uformer-s", "uformer-s-512.onnx"), ("drsformer-s", "drsformer-s-512.onnx"),
]

/// One preset timed against its ONNX Runtime peer.
struct PeerComparison: Codable {
    let preset: String
    let peer: String
    /// Seconds per 512×512 inference, round by round (each the median of that round's runs).
    let ours: [Double]
    let theirs: [Double]
    /// ours / theirs, round by round.
    let ratios: [Double]
    let oursMedian: Double
    let theirsMedian: Double
    let ratioMedian: Double
    /// Peak resident bytes: this process while building and running the preset (model, input and harness
    /// included), and the ONNX Runtime process (largest of its rounds).
    let oursPeakRSS: Double?
    let theirsPeakRSS: Double?
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Runs `python3 ort_time.py model --threads threads --runs runs`; the median of its timed runs (seconds) and its
/// peak RSS (bytes).
private func runPeer(script: URL, model: URL, threads: Int, runs: Int) throws -> (seconds: Double, peakRSS: Double?) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, model.path, "--threads", "\(threads)", "--runs", "\(runs)"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // "<model> onnxruntime <version> threads <n>: median <s> s, min <s> s, peak RSS <MB> MB"
    func number(after key: String) -> Double? {
        guard let range = output.range(of: key) else { return nil }
        return Double(output[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }
    guard process.terminationStatus == 0, let seconds = number(after: "median ") else {
        throw PeerError("ONNX Runtime on \(model.lastPathComponent) failed (exit \(process.terminationStatus)): "
                        + (output.split(separator: "\n").last.map(String.init) ?? ""))
    }
    return (seconds, number(after: "peak RSS ").map { $0 * 1_048_576 })
}

struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The interleaved comparison of every preset with a peer file in `directory`, `rounds` pairs each.
func comparePeers(directory: URL, rounds: Int, runs: Int, threads: Int, presets: [String]?) throws -> [PeerComparison] {
    let script = directory.appendingPathComponent("ort_time.py")
    guard FileManager.default.fileExists(atPath: script.path) else {
        throw PeerError("\(script.path) not found")
    }
    var comparisons: [PeerComparison] = []
    for (preset, file) in peerPresets where presets?.contains(preset) ?? true {
        let model = directory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: model.path) else { print("peers: \(model.path) not found, skipped"); continue }
        ProcessMemory.resetPeak()
        var ours: [Double] = [], theirs: [Double] = []
        var theirsPeak: Double? = nil
        do {
            let network = presetModel(preset)
            let image = benchTensor([1, 3, 512, 512], seed: 11).clamped(-1, 1)
            _ = Inference.restore(network, image)  // warm-up, as ort_time.py warms up its session
            for round in 0..<rounds {
                ours.append(median((0..<runs).map { _ in timeOnce { _ = Inference.restore(network, image) } }))
                let peer = try runPeer(script: script, model: model, threads: threads, runs: runs)
                theirs.append(peer.seconds)
                theirsPeak = max(theirsPeak ?? 0, peer.peakRSS ?? 0)
                print(String(format: "  %@ round %d: SwiftSKD %.3f s, ONNX Runtime %.3f s, ratio %.2f",
                             preset, round + 1, ours.last!, theirs.last!, ours.last! / theirs.last!))
            }
        }
        let ratios = zip(ours, theirs).map { $0 / $1 }
        comparisons.append(PeerComparison(
            preset: preset, peer: file, ours: ours, theirs: theirs, ratios: ratios, oursMedian: median(ours),
            theirsMedian: median(theirs), ratioMedian: median(ratios), oursPeakRSS: ProcessMemory.peak,
            theirsPeakRSS: theirsPeak))
    }
    return comparisons
}

/// The comparison as a table: medians, ratio (median of the per-round ratios, with its range), peak RSS.
func peerTable(_ comparisons: [PeerComparison]) -> String {
    func mb(_ bytes: Double?) -> String { bytes.map { String(format: "%.0f", $0 / 1_048_576) } ?? "-" }
    func padded(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
    var lines = [padded("preset", 14) + padded("SwiftSKD", 11) + padded("ONNX Runtime", 14) + padded("ratio (min–max)", 19)
                 + "peak MB SwiftSKD / ONNX Runtime"]
    for c in comparisons {
        lines.append(padded(c.preset, 14) + padded(String(format: "%.3f s", c.oursMedian), 11)
                     + padded(String(format: "%.3f s", c.theirsMedian), 14)
                     + padded(String(format: "%.2f (%.2f–%.2f)", c.ratioMedian, c.ratios.min() ?? 0, c.ratios.max() ?? 0), 19)
                     + "\(mb(c.oursPeakRSS)) / \(mb(c.theirsPeakRSS))")
    }
    return lines.joined(separator: "\n")
}
