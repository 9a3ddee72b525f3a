// skd-bench: times SwiftSKD's kernels, blocks, 512×512 inference of every preset and a distillation training
// step, and writes the results as JSON. Every GFLOP/s figure is also given as a ratio to the raw sgemm 2048³
// rate of the same run, which makes figures comparable across machines.
//
//   swift run -c release skd-bench [FILTER...] [--json PATH] [--samples N] [--warmup N] [--seconds S]
//                                  [--column-bytes B] [--threads N] [--cache-mb N] [--train-batch N] [--skd-batch N] [--band-kib N] [--ffn-band-kib N] [--list]
//                                  [--peers DIR] [--peer-rounds N] [--peer-runs N] [--no-peers]
//
// (`skd-bench --help` lists the options; swift-argument-parser parses them.)
//
// A benchmark runs when its name contains any FILTER (case-insensitive), or always when no filter is given.
// New benchmarks are added as entries of a list (see KernelBenchmarks.swift) and joined into `allBenchmarks`.

import ArgumentParser
import Foundation
import SKDModels
import SKDTensor

var allBenchmarks: [Benchmark] { kernelBenchmarks + blockBenchmarks + endToEndBenchmarks }
/// The reference every GFLOP/s figure is divided by.
let referenceName = "sgemm 2048x2048x2048"

@main
struct SKDBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skd-bench",
        abstract: "Time SwiftSKD's kernels, blocks, 512x512 inference of every preset and the distillation training step.",
        discussion: """
        A benchmark runs when its name contains any FILTER (case-insensitive), or always when no filter is given; the \
        sgemm 2048^3 reference runs first in every run, and every GFLOP/s figure is also given as a ratio to it. \
        Results go to the terminal and, as JSON, to --json.
        """)

    @Argument(help: ArgumentHelp("Run only benchmarks whose name contains one of the filters (case-insensitive).", valueName: "filter"))
    var filters: [String] = []

    @Option(help: ArgumentHelp("Where to write the results.", valueName: "path"))
    var json = ".build/bench-results.json"

    @Option(help: ArgumentHelp("Exactly N timed runs for every benchmark. (default: at least 5 and 1 s; 3 for end-to-end runs)", valueName: "n"))
    var samples: Int?

    @Option(help: ArgumentHelp("Untimed runs first, for every benchmark. (default: 2; 1 for end-to-end runs)", valueName: "n"))
    var warmup: Int?

    @Option(help: ArgumentHelp("Keep sampling until S seconds were timed, up to 50 runs. (default: 1)", valueName: "s"))
    var seconds: Double?

    @Option(help: ArgumentHelp("im2col block size of the convolutions (ConvolutionTuning.columnBufferBytes).", valueName: "bytes"))
    var columnBytes: Int?

    @Option(help: ArgumentHelp("OpenBLAS and kernel threads. (default: all cores)", valueName: "n"))
    var threads: Int?

    @Option(name: .customLong("cache-mb"), help: ArgumentHelp("The cap of the tensor-buffer cache (TensorMemory.cacheLimitBytes; 0 disables it).", valueName: "n"))
    var cacheMB: Int?

    @Option(help: ArgumentHelp("The batch of the training-step benchmarks. (default: 8)", valueName: "n"))
    var trainBatch: Int?

    @Option(help: ArgumentHelp("The batch of the full-SKD training steps (about 6 GB at 8; 12 GB uncheckpointed). (default: 8)", valueName: "n"))
    var skdBatch: Int?

    @Option(name: .customLong("band-kib"), help: ArgumentHelp("The row-band budget of the Restormer/DRSformer inference paths (inferenceBandBytes).", valueName: "n"))
    var bandKiB: Int?

    @Option(name: .customLong("ffn-band-kib"), help: ArgumentHelp("The row-band budget of the DRSformer MSFN and Uformer LeFF inference paths (feedForwardBandBytes).", valueName: "n"))
    var ffnBandKiB: Int?

    @Flag(help: "Print the names of the benchmarks (that the filters select) and exit.")
    var list = false

    @Option(help: ArgumentHelp("""
        Also time ONNX Runtime on the official networks in DIR (ort_time.py and the .onnx files), interleaved round by \
        round with SwiftSKD's 512x512 inference. (default: $SKD_PEERS_DIR or ../shared/peers when it exists and no \
        filter is given; with filters, the presets they match)
        """, valueName: "dir"))
    var peers: String?

    @Option(help: ArgumentHelp("SwiftSKD/ONNX Runtime pairs per preset.", valueName: "n"))
    var peerRounds = 3

    @Option(help: ArgumentHelp("Timed inferences per side and round, compared by their medians (as ort_time.py).", valueName: "n"))
    var peerRuns = 3

    @Flag(help: "Skip the ONNX Runtime comparison.")
    var noPeers = false

    func validate() throws {
        func atLeast(_ value: Int?, _ minimum: Int, _ option: String) throws {
            if let value, value < minimum { throw ValidationError("\(option) must be at least \(minimum) (got \(value))") }
        }
        try atLeast(samples, 1, "--samples"); try atLeast(warmup, 0, "--warmup"); try atLeast(columnBytes, 1, "--column-bytes")
        try atLeast(threads, 1, "--threads"); try atLeast(cacheMB, 0, "--cache-mb"); try atLeast(trainBatch, 1, "--train-batch")
        try atLeast(skdBatch, 1, "--skd-batch"); try atLeast(bandKiB, 1, "--band-kib"); try atLeast(ffnBandKiB, 1, "--ffn-band-kib")
        try atLeast(peerRounds, 1, "--peer-rounds"); try atLeast(peerRuns, 1, "--peer-runs")
        if let seconds, !(seconds >= 0 && seconds.isFinite) { throw ValidationError("--seconds must be a finite number ≥ 0 (got \(seconds))") }
    }

    /// The run settings and the process-wide knobs the options name.
    func applyOptions() -> RunSettings {
        var settings = RunSettings()
        if let samples {
            settings.minSamples = samples; settings.maxSamples = samples; settings.minSeconds = 0; settings.overridesBenchmarks = true
        }
        if let warmup { settings.warmup = warmup; settings.overridesBenchmarks = true }
        if let seconds { settings.minSeconds = seconds }
        if let columnBytes { ConvolutionTuning.columnBufferBytes = columnBytes }
        if let threads { BLAS.threads = threads; Parallel.threads = threads }
        if let cacheMB { TensorMemory.cacheLimitBytes = cacheMB << 20 }
        if let trainBatch { trainingBatch = trainBatch }
        if let skdBatch { skdTrainingBatch = skdBatch }
        if let bandKiB {
            RestormerTransformerBlock.inferenceBandBytes = bandKiB << 10
            DRSformerTransformerBlock.inferenceBandBytes = bandKiB << 10
        }
        if let ffnBandKiB {
            DRSformerTransformerBlock.feedForwardBandBytes = ffnBandKiB << 10
            UformerLeWinBlock.feedForwardBandBytes = ffnBandKiB << 10
        }
        return settings
    }

    func run() throws {
        let settings = applyOptions()
        let filters = self.filters.map { $0.lowercased() }
        let jsonPath = json, peersDirectory = peers, listOnly = list
        // The ONNX Runtime comparison: asked for with --peers, or by default in a full run when the peers are there.
        let defaultPeers = ProcessInfo.processInfo.environment["SKD_PEERS_DIR"] ?? "../shared/peers"
        let peerPresetFilter: [String]? = filters.isEmpty ? nil
            : peerPresets.map(\.preset).filter { preset in filters.contains { "peers \(preset)".contains($0) } }
        let peersToRun: String? = noPeers || peerPresetFilter?.isEmpty == true ? nil
            : peersDirectory ?? (FileManager.default.fileExists(atPath: defaultPeers + "/ort_time.py") ? defaultPeers : nil)

        var selected = allBenchmarks.filter { b in filters.isEmpty || filters.contains { b.name.lowercased().contains($0) } }
        if listOnly {
            for b in selected { print(b.name) }
            return
        }
        if selected.isEmpty && peersToRun == nil {
            print("skd-bench: no benchmark matches \(filters); use --list to see them")
            throw ExitCode(1)
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
            var result = skd_bench.run(benchmark, settings)
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
            throw ExitCode(1)
        }
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
