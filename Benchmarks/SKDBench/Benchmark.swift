// The benchmark harness: a benchmark is a name, the work one run does, and a factory that builds its inputs
// and returns the closure to time. Inputs are built only for the benchmarks a run selects.

import Foundation

/// One timed workload.
struct Benchmark {
    /// A unique, filterable name, e.g. `"conv2d 3x3 48->48 1x48x256x256"`.
    let name: String
    /// Floating-point operations of one run (a multiply-add counts 2); 0 when not meaningful. Evaluated after
    /// `prepare`, so a benchmark can count the operations of the model it built.
    var flops: Double { flopsCount() }
    private let flopsCount: () -> Double
    /// Bytes one run must move at least (inputs read + outputs written once); 0 when not meaningful.
    let bytes: Double
    /// Builds the inputs (untimed) and returns the closure that one timed run calls.
    let prepare: () -> () -> Void
    /// Sampling for this benchmark instead of the run's settings (the end-to-end runs take seconds each).
    let settings: RunSettings?

    init(_ name: String, flops: @escaping @autoclosure () -> Double = 0, bytes: Double = 0, settings: RunSettings? = nil,
         prepare: @escaping () -> () -> Void) {
        self.name = name
        self.flopsCount = flops
        self.bytes = bytes
        self.settings = settings
        self.prepare = prepare
    }
}

/// A value set while preparing a benchmark and read when its result is made (e.g. a model's MAC count).
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

/// How long and how often each benchmark runs.
struct RunSettings {
    /// Untimed runs before sampling (page faults, OpenBLAS thread start-up, caches).
    var warmup = 2
    /// Timed runs at least…
    var minSamples = 5
    /// …and more until this much time was spent sampling, up to `maxSamples`.
    var minSeconds = 1.0
    var maxSamples = 50

    /// A few runs of a workload that takes seconds: one warm-up, three samples.
    static let long = RunSettings(warmup: 1, minSamples: 3, minSeconds: 0, maxSamples: 3)
}

/// The timings of one benchmark, in seconds per run, and the throughput at the median time.
struct BenchmarkResult: Codable {
    let name: String
    let samples: Int
    let median: Double
    let min: Double
    let max: Double
    let flops: Double
    let bytes: Double
    let gflops: Double?
    let gbytes: Double?
    /// The process's resident high-water mark over preparation and all runs, in bytes (model, inputs and the
    /// harness included: comparable to a framework's peak RSS).
    var peakRSS: Double?
    /// That peak minus the resident size just before preparation: what the workload itself added.
    var peakIncrease: Double?
    /// `gflops` divided by the raw sgemm 2048³ rate of the same run (comparable across machines).
    var sgemmRatio: Double?
    /// The 1-minute load average when the benchmark finished (other work on the machine skews timings).
    var loadAverage: Double?

    init(name: String, times sorted: [Double], flops: Double, bytes: Double) {
        self.name = name
        samples = sorted.count
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted.first!
        max = sorted.last!
        self.flops = flops
        self.bytes = bytes
        gflops = flops > 0 ? flops / median / 1e9 : nil
        gbytes = bytes > 0 ? bytes / median / 1e9 : nil
    }
}

/// Seconds elapsed while running `body` once, on the monotonic clock.
@inline(never)
func timeOnce(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
}

/// Warms up, then samples `benchmark` per `settings`.
func run(_ benchmark: Benchmark, _ defaults: RunSettings) -> BenchmarkResult {
    let settings = benchmark.settings ?? defaults
    ProcessMemory.resetPeak()
    let before = ProcessMemory.resident
    // The inputs live only inside this call, so they are freed before the next benchmark's memory is measured.
    func prepareAndSample() -> BenchmarkResult { sample(benchmark, benchmark.prepare(), settings) }
    var result = prepareAndSample()
    result.peakRSS = ProcessMemory.peak
    if let peak = result.peakRSS, let before, ProcessMemory.canResetPeak { result.peakIncrease = peak - before }
    result.loadAverage = loadAverage().first
    return result
}

/// The timed part of `run`: warm-up, then samples.
private func sample(_ benchmark: Benchmark, _ body: () -> Void, _ settings: RunSettings) -> BenchmarkResult {
    for _ in 0..<settings.warmup { body() }
    var times: [Double] = []
    var spent = 0.0
    while times.count < settings.minSamples || (spent < settings.minSeconds && times.count < settings.maxSamples) {
        let t = timeOnce(body)
        times.append(t)
        spent += t
    }
    return BenchmarkResult(name: benchmark.name, times: times.sorted(), flops: benchmark.flops, bytes: benchmark.bytes)
}

/// Formats seconds with a unit that keeps 3–4 significant digits.
func formatTime(_ s: Double) -> String {
    if s >= 1 { return String(format: "%.3f s", s) }
    if s >= 1e-3 { return String(format: "%.2f ms", s * 1e3) }
    return String(format: "%.1f µs", s * 1e6)
}

/// The table header and one row per result.
func tableHeader(nameWidth: Int) -> String {
    "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
        + "    median              min–max  GFLOP/s  ×sgemm    GB/s  peak MB  +MB  n  load"
}

func tableRow(_ r: BenchmarkResult, nameWidth: Int) -> String {
    func mb(_ bytes: Double?) -> String { bytes.map { String(format: "%.0f", $0 / 1_048_576) } ?? "-" }
    let name = r.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
    let median = formatTime(r.median).leftPadded(10)
    let spread = "\(formatTime(r.min))–\(formatTime(r.max))".leftPadded(20)
    let gflops = (r.gflops.map { String(format: "%.1f", $0) } ?? "-").leftPadded(8)
    let ratio = (r.sgemmRatio.map { String(format: "%.2f", $0) } ?? "-").leftPadded(7)
    let gbytes = (r.gbytes.map { String(format: "%.1f", $0) } ?? "-").leftPadded(7)
    let load = (r.loadAverage.map { String(format: "%.1f", $0) } ?? "-").leftPadded(5)
    return "\(name) \(median) \(spread) \(gflops) \(ratio) \(gbytes) \(mb(r.peakRSS).leftPadded(8)) "
        + "\(mb(r.peakIncrease).leftPadded(4)) \(String(r.samples).leftPadded(2)) \(load)"
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
