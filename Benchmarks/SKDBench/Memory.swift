// Process memory as the kernel accounts it: resident set now and its high-water mark, read from
// /proc/self/status. Linux lets a process reset its own high-water mark (`echo 5 > /proc/self/clear_refs`),
// so every benchmark gets a peak of its own instead of the process-wide maximum.

import Foundation
import SKDTensor
#if canImport(Glibc)
import Glibc
#endif

#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

enum ProcessMemory {
    /// A `VmRSS`/`VmHWM`-style field of /proc/self/status in bytes; nil where /proc is missing.
    private static func statusField(_ key: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let digits = line.dropFirst(key.count + 1).filter(\.isNumber)
            return Double(digits).map { $0 * 1024 }
        }
        return nil
    }

    /// Resident bytes now.
    static var resident: Double? { statusField("VmRSS") }
    /// The resident high-water mark since the last `resetPeak()` (or process start).
    static var peak: Double? { statusField("VmHWM") }

    /// Whether `resetPeak()` works here; decided once.
    static let canResetPeak: Bool = {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }()

    /// Returns cached and freed memory to the system, then restarts the high-water mark from the current
    /// resident size, so that the next peak belongs to the next benchmark only.
    static func resetPeak() {
        TensorMemory.releaseCachedBuffers()
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)
        #endif
        guard canResetPeak, let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return }
        try? handle.write(contentsOf: Data("5".utf8))
        try? handle.close()
    }
}

/// What the table and JSON say about the machine a run was taken on.
struct MachineInfo: Codable {
    let cpu: String
    let cores: Int
    let memoryGiB: Double
    let openBLAS: String
    /// The CPU and the BLAS kernel selection (core at load, core in use, what was done).
    let blas: BLASKernelSelection
    let cpuFeatures: [String]
    let loadAverageAtStart: [Double]

    static func current() -> MachineInfo {
        var cpu = "unknown"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return MachineInfo(
            cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
            openBLAS: BLAS.configuration, blas: BLAS.kernelSelection, cpuFeatures: CPUInfo.current.features.names,
            loadAverageAtStart: loadAverage())
    }
}

/// The 1, 5 and 15 minute load averages (empty where unavailable): other work on a shared machine skews timings.
func loadAverage() -> [Double] {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
    return text.split(separator: " ").prefix(3).compactMap { Double($0) }
}
