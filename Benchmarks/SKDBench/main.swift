// skd-bench: times SwiftSKD's kernels (and, later, whole models) and writes the results as JSON.
//
//   swift run -c release skd-bench [FILTER...] [--json PATH] [--samples N] [--warmup N] [--seconds S]
//                                  [--column-bytes B] [--threads N] [--list]
//
// A benchmark runs when its name contains any FILTER (case-insensitive), or always when no filter is given.
// New benchmarks are added as entries of a list (see KernelBenchmarks.swift) and joined into `allBenchmarks`.

import Foundation
import SKDTensor

let allBenchmarks: [Benchmark] = kernelBenchmarks

func usage() -> Never {
    print("""
    usage: skd-bench [FILTER...] [--json PATH] [--samples N] [--warmup N] [--seconds S] [--column-bytes B] [--threads N] [--list]
      FILTER       run only benchmarks whose name contains one of the filters (case-insensitive)
      --json PATH  where to write the results (default .build/bench-results.json)
      --samples N  minimum timed runs per benchmark (default 5)
      --warmup N   untimed runs first (default 2)
      --seconds S  keep sampling until S seconds were timed, up to 50 runs (default 1)
      --column-bytes B  im2col block size of the convolutions (ConvolutionTuning.columnBufferBytes)
      --threads N  OpenBLAS and kernel threads (default: all cores)
      --list       print the benchmark names and exit
    """)
    exit(2)
}

var filters: [String] = []
var jsonPath = ".build/bench-results.json"
var settings = RunSettings()
var listOnly = false
var arguments = CommandLine.arguments.dropFirst()
while let arg = arguments.popFirst() {
    func value() -> String { guard let v = arguments.popFirst() else { usage() }; return v }
    switch arg {
    case "--json": jsonPath = value()
    case "--samples": guard let n = Int(value()), n >= 1 else { usage() }; settings.minSamples = n
    case "--warmup": guard let n = Int(value()), n >= 0 else { usage() }; settings.warmup = n
    case "--seconds": guard let s = Double(value()), s >= 0 else { usage() }; settings.minSeconds = s
    case "--column-bytes": guard let n = Int(value()), n >= 1 else { usage() }; ConvolutionTuning.columnBufferBytes = n
    case "--threads":
        guard let n = Int(value()), n >= 1 else { usage() }
        BLAS.threads = n
        Parallel.threads = n
    case "--list": listOnly = true
    case "-h", "--help": usage()
    default:
        if arg.hasPrefix("--") { usage() }
        filters.append(arg.lowercased())
    }
}

let selected = allBenchmarks.filter { b in filters.isEmpty || filters.contains { b.name.lowercased().contains($0) } }
if listOnly {
    for b in selected { print(b.name) }
    exit(0)
}
if selected.isEmpty {
    print("skd-bench: no benchmark matches \(filters); use --list to see them")
    exit(1)
}

#if DEBUG
print("warning: skd-bench was built in debug mode; run `swift run -c release skd-bench` for meaningful numbers")
#endif
print("cores: \(ProcessInfo.processInfo.activeProcessorCount), OpenBLAS threads: \(BLAS.threads), kernel threads: \(Parallel.threads)")
let nameWidth = max(24, selected.map(\.name.count).max()!)
print(tableHeader(nameWidth: nameWidth))
var results: [BenchmarkResult] = []
for benchmark in selected {
    let result = run(benchmark, settings)
    results.append(result)
    print(tableRow(result, nameWidth: nameWidth))
}

/// The JSON document: when and where the numbers were taken, then one entry per benchmark.
struct Report: Codable {
    let date: String
    let host: String
    let cores: Int
    let blasThreads: Int
    let results: [BenchmarkResult]
}

let report = Report(
    date: ISO8601DateFormatter().string(from: Date()), host: ProcessInfo.processInfo.hostName,
    cores: ProcessInfo.processInfo.activeProcessorCount, blasThreads: BLAS.threads, results: results)
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
