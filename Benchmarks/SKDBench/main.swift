// skd-bench: times SwiftSKD's kernels, blocks, 512×512 inference of every preset and a distillation training
// step, and writes the results as JSON. Every GFLOP/s figure is also given as a ratio to the raw sgemm 2048³
// rate of the same run, which makes figures comparable across machines.
//
//   swift run -c release skd-bench [FILTER...] [--json PATH] [--samples N] [--warmup N] [--seconds S]
//                                  [--column-bytes B] [--threads N] [--cache-mb N] [--train-batch N] [--skd-batch N] [--band-kib N] [--ffn-band-kib N] [--list]
//                                  [--peers DIR] [--peer-rounds N] [--peer-runs N] [--no-peers]
//
// A benchmark runs when its name contains any FILTER (case-insensitive), or always when no filter is given.
// New benchmarks are added as entries of a list (see KernelBenchmarks.swift) and joined into `allBenchmarks`.

import Foundation
import SKDModels
import SKDTensor

var allBenchmarks: [Benchmark] { kernelBenchmarks + blockBenchmarks + endToEndBenchmarks }
/// The reference every GFLOP/s figure is divided by.
let referenceName = "sgemm 2048x2048x2048"

func usage() -> Never {
    print("""
    usage: skd-bench [FILTER...] [--json PATH] [--samples N] [--warmup N] [--seconds S] [--column-bytes B] [--threads N] [--cache-mb N] [--train-batch N] [--skd-batch N] [--band-kib N] [--list]
      FILTER       run only benchmarks whose name contains one of the filters (case-insensitive)
      --json PATH  where to write the results (default .build/bench-results.json)
      --samples N  exactly N timed runs for every benchmark (default: at least 5 and 1 s; 3 for end-to-end runs)
      --warmup N   untimed runs first, for every benchmark (default 2; 1 for end-to-end runs)
      --seconds S  keep sampling until S seconds were timed, up to 50 runs (default 1)
      --column-bytes B  im2col block size of the convolutions (ConvolutionTuning.columnBufferBytes)
      --threads N  OpenBLAS and kernel threads (default: all cores)
      --cache-mb N the cap of the tensor-buffer cache (TensorMemory.cacheLimitBytes; 0 disables it)
      --train-batch N  the batch of the training-step benchmarks (default 8)
      --skd-batch N    the batch of the full-SKD training steps (default 8; about 6 GB, 12 GB uncheckpointed)
      --band-kib N     the row-band budget of the Restormer/DRSformer inference paths (inferenceBandBytes)
      --ffn-band-kib N the row-band budget of the DRSformer MSFN and Uformer LeFF inference paths (feedForwardBandBytes)
      --list       print the benchmark names and exit
      --peers DIR  also time ONNX Runtime on the official networks in DIR (ort_time.py and the .onnx files),
                   interleaved round by round with SwiftSKD's 512x512 inference (default: $SKD_PEERS_DIR or
                   ../shared/peers when it exists and no FILTER is given; with FILTERs, the presets they match)
      --peer-rounds N  SwiftSKD/ONNX Runtime pairs per preset (default 3)
      --peer-runs N    timed inferences per side and round, compared by their medians (default 3, as ort_time.py)
      --no-peers   skip the ONNX Runtime comparison
    """)
    exit(2)
}

var filters: [String] = []
var jsonPath = ".build/bench-results.json"
var settings = RunSettings()
var listOnly = false
var peersDirectory: String? = nil
var peerRounds = 3
var peerRuns = 3
var noPeers = false
var arguments = CommandLine.arguments.dropFirst()
while let arg = arguments.popFirst() {
    func value() -> String { guard let v = arguments.popFirst() else { usage() }; return v }
    switch arg {
    case "--json": jsonPath = value()
    case "--samples": guard let n = Int(value()), n >= 1 else { usage() }; settings.minSamples = n; settings.maxSamples = n
        settings.minSeconds = 0; settings.overridesBenchmarks = true
    case "--warmup": guard let n = Int(value()), n >= 0 else { usage() }; settings.warmup = n; settings.overridesBenchmarks = true
    case "--seconds": guard let s = Double(value()), s >= 0 else { usage() }; settings.minSeconds = s
    case "--column-bytes": guard let n = Int(value()), n >= 1 else { usage() }; ConvolutionTuning.columnBufferBytes = n
    case "--threads":
        guard let n = Int(value()), n >= 1 else { usage() }
        BLAS.threads = n
        Parallel.threads = n
    case "--cache-mb":
        guard let n = Int(value()), n >= 0 else { usage() }
        TensorMemory.cacheLimitBytes = n << 20
    case "--train-batch": guard let n = Int(value()), n >= 1 else { usage() }; trainingBatch = n
    case "--skd-batch": guard let n = Int(value()), n >= 1 else { usage() }; skdTrainingBatch = n
    case "--band-kib":
        guard let n = Int(value()), n >= 1 else { usage() }
        RestormerTransformerBlock.inferenceBandBytes = n << 10
        DRSformerTransformerBlock.inferenceBandBytes = n << 10
    case "--ffn-band-kib":
        guard let n = Int(value()), n >= 1 else { usage() }
        DRSformerTransformerBlock.feedForwardBandBytes = n << 10
        UformerLeWinBlock.feedForwardBandBytes = n << 10
    case "--list": listOnly = true
    case "--peers": peersDirectory = value()
    case "--peer-rounds": guard let n = Int(value()), n >= 1 else { usage() }; peerRounds = n
    case "--peer-runs": guard let n = Int(value()), n >= 1 else { usage() }; peerRuns = n
    case "--no-peers": noPeers = true
    case "-h", "--help": usage()
    default:
        if arg.hasPrefix("--") { usage() }
        filters.append(arg.lowercased())
    }
}

// The ONNX Runtime comparison: asked for with --peers, or by default in a full run when the peers are there.
let defaultPeers = ProcessInfo.processInfo.environment["SKD_PEERS_DIR"] ?? "../shared/peers"
let peerPresetFilter: [String]? = filters.isEmpty ? nil
    : peerPresets.map(\.preset).filter { preset in filters.contains { "peers \(preset)".contains($0) } }
let peersToRun: String? = noPeers || peerPresetFilter?.isEmpty == true ? nil
    : peersDirectory ?? (FileManager.default.fileExists(atPath: defaultPeers + "/ort_time.py") ? defaultPeers : nil)

var selected = allBenchmarks.filter { b in filters.isEmpty || filters.contains { b.name.lowercased().contains($0) } }
if listOnly {
    for b in selected { print(b.name) }
    exit(0)
}
if selected.isEmpty && peersToRun == nil {
    print("skd-bench: no benchmark matches \(filters); use --list to see them")
    exit(1)
}

// The reference rate is measured in every run, first, whatever the filters.
if !listOnly, !selected.contains(where: { $0.name == referenceName }),
   let reference = allBenchmarks.first(where: { $0.name == referenceName }) {
    selected.insert(reference, at: 0)
}

#if DEBUG
print("warning: skd-bench was built in debug mode; run `swift run -c release skd-bench` for meaningful numbers")
#endif
let machine = MachineInfo.current()
print("machine: \(machine.cpu), \(machine.cores) cores, \(String(format: "%.1f", machine.memoryGiB)) GiB; \(machine.openBLAS)")
print("cpu: \(machine.blas.cpu); \(machine.blas.cpu.vectorLevel); \(machine.cpuFeatures.joined(separator: " "))")
if let warning = machine.blas.warning { print(warning) }
print("OpenBLAS threads: \(BLAS.threads), kernel threads: \(Parallel.threads); load average at start: "
      + machine.loadAverageAtStart.map { String(format: "%.2f", $0) }.joined(separator: " "))
if !ProcessMemory.canResetPeak { print("note: /proc/self/clear_refs is not writable; peak MB is the process-wide peak so far") }
let nameWidth = max(24, selected.map(\.name.count).max()!)
print(tableHeader(nameWidth: nameWidth))
var results: [BenchmarkResult] = []
var referenceRate: Double? = nil
for benchmark in selected {
    var result = run(benchmark, settings)
    if benchmark.name == referenceName { referenceRate = result.gflops }
    if let rate = result.gflops, let referenceRate { result.sgemmRatio = rate / referenceRate }
    results.append(result)
    print(tableRow(result, nameWidth: nameWidth))
}

var peerComparisons: [PeerComparison] = []
if let directory = peersToRun {
    print("\nSwiftSKD vs ONNX Runtime (\(directory)), 512x512, \(BLAS.threads) threads each, \(peerRounds) interleaved rounds of \(peerRuns) runs:")
    do {
        peerComparisons = try comparePeers(directory: URL(fileURLWithPath: directory), rounds: peerRounds, runs: peerRuns,
                                           threads: BLAS.threads, presets: peerPresetFilter)
        print(peerTable(peerComparisons))
    } catch {
        print("peers: \(error) (pip install onnxruntime numpy)")
    }
}

/// The JSON document: when and where the numbers were taken, then one entry per benchmark.
struct Report: Codable {
    let date: String
    let host: String
    let machine: MachineInfo
    let blasThreads: Int
    let kernelThreads: Int
    let sgemmReferenceGFLOPS: Double?
    let results: [BenchmarkResult]
    /// SwiftSKD against ONNX Runtime, interleaved (empty when not run).
    let peers: [PeerComparison]
}

let report = Report(
    date: ISO8601DateFormatter().string(from: Date()), host: ProcessInfo.processInfo.hostName, machine: machine,
    blasThreads: BLAS.threads, kernelThreads: Parallel.threads, sgemmReferenceGFLOPS: referenceRate, results: results,
    peers: peerComparisons)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
do {
    let url = URL(fileURLWithPath: jsonPath)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try encoder.encode(report).write(to: url)
    print("results written to \(jsonPath)")
} catch {
    print("skd-bench: cannot write \(jsonPath): \(error)")
    exit(1)
}
