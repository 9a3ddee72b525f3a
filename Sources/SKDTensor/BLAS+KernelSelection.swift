// OpenBLAS kernel selection: a distribution's OpenBLAS older than the CPU falls back to its slowest kernels.
//
// OpenBLAS built with DYNAMIC_ARCH picks a kernel set ("core") for the CPU when it loads. One that predates the CPU
// (Debian 12's 0.3.21 on a 5th-generation Xeon, family 6 model 207) does not recognise it and falls back to
// `Prescott`, its SSE3 kernels: sgemm at a fifth of the speed the CPU can give. Before the first BLAS call SwiftSKD
// compares the core with what the CPU can run and, when the core is narrower and the user has not chosen one with
// `OPENBLAS_CORETYPE`, re-runs OpenBLAS's own selection with the best core for the CPU (`gotoblas_dynamic_quit` /
// `gotoblas_dynamic_init`, the functions OpenBLAS runs at load), then checks GEMMs against a plain loop and goes back
// to the original core if they differ. With another BLAS, or an OpenBLAS without those functions, nothing happens.

import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What SwiftSKD found and did about OpenBLAS's kernel set, once per process (`BLAS.kernelSelection`).
package struct BLASKernelSelection: Sendable, Codable, Equatable, CustomStringConvertible {
    /// What to do about a reported core (the pure part of the selection, `plan(reportedCore:cpu:userCoreType:)`).
    package enum Plan: Sendable, Equatable {
        /// Leave the core as it is, for the reason given.
        case keep(reason: String)
        /// Switch to the first of these cores that loads and computes correctly.
        case switchTo(candidates: [String])
    }

    /// The BLAS library's build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64".
    package var library: String
    /// The core OpenBLAS chose when it loaded (nil if the library does not say).
    package var coreAtLoad: String?
    /// The core in use now.
    package var coreInUse: String?
    /// The processor.
    package var cpu: CPUInfo
    /// What was done and why, in one line.
    package var note: String

    /// A selection from its parts (tests, and reports read back from JSON).
    package init(library: String, coreAtLoad: String?, coreInUse: String?, cpu: CPUInfo, note: String) {
        self.library = library
        self.coreAtLoad = coreAtLoad
        self.coreInUse = coreInUse
        self.cpu = cpu
        self.note = note
    }

    /// The vector width of the core in use (nil for a core this code does not know).
    package var coreLevel: VectorLevel? { coreInUse.flatMap(BLASKernelSelection.level(ofCore:)) }

    /// True when the core in use is known to use narrower vectors than the CPU can run: BLAS is slow.
    package var coreIsBelowCPU: Bool { coreLevel.map { $0 < cpu.vectorLevel } ?? false }

    /// A warning for the user when the core in use is below the CPU, else nil.
    package var warning: String? {
        guard coreIsBelowCPU, let core = coreInUse, let level = coreLevel else { return nil }
        return "warning: OpenBLAS runs its \(core) kernels (\(level)) on a CPU that can run \(cpu.vectorLevel): "
            + "matrix products are several times slower than they could be (\(note))"
    }

    /// E.g. `OpenBLAS 0.3.21 … (core: SkylakeX; OpenBLAS chose Prescott for this AVX-512 CPU; re-selected SkylakeX)`.
    package var description: String {
        "\(library) (core: \(coreInUse ?? "?"); \(note))"
    }

    // MARK: - The plan (pure; tests drive it with any reported core and CPU)

    /// The vector width of an OpenBLAS x86-64 core's sgemm kernels, by its name (case-insensitive); nil if unknown.
    package static func level(ofCore name: String) -> VectorLevel? {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen": return .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return .avx
        case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "nano", "barcelona", "bobcat",
             "opteron", "opteron_sse3", "katmai", "coppermine", "northwood", "banias", "athlon", "generic":
            return .sse
        default: return nil
        }
    }

    /// The cores to try for a CPU, best first. For AVX-512 CPUs SkylakeX: its sgemm kernels are the ones Cooperlake
    /// and Sapphire Rapids use too (those add BF16 routines SwiftSKD does not call), and they beat Haswell's on the
    /// GEMM shapes of the models (Docs/performance.md). AMD's AVX2 CPUs get OpenBLAS's Zen blocking first.
    package static func candidates(for cpu: CPUInfo) -> [String] {
        switch cpu.vectorLevel {
        case .avx512: return ["SkylakeX", "Haswell"]
        case .avx2: return cpu.vendor == "AuthenticAMD" ? ["Zen", "Haswell"] : ["Haswell", "Zen"]
        case .avx: return ["Sandybridge"]
        case .sse: return []
        }
    }

    /// What to do when OpenBLAS reports `reportedCore` on `cpu`, given the user's `OPENBLAS_CORETYPE` (nil: unset).
    package static func plan(reportedCore: String?, cpu: CPUInfo, userCoreType: String?) -> Plan {
        if let user = userCoreType, !user.isEmpty {
            return .keep(reason: "OPENBLAS_CORETYPE=\(user) set by the user")
        }
        guard let core = reportedCore, !core.isEmpty else { return .keep(reason: "the BLAS library names no core") }
        guard let coreLevel = level(ofCore: core) else { return .keep(reason: "core \(core) kept (not one this code ranks)") }
        guard coreLevel < cpu.vectorLevel else { return .keep(reason: "OpenBLAS's choice fits the CPU") }
        let candidates = candidates(for: cpu).filter { level(ofCore: $0).map { $0 > coreLevel } ?? false }
        guard !candidates.isEmpty else { return .keep(reason: "no better core known for this CPU") }
        return .switchTo(candidates: candidates)
    }
}

extension BLAS {
    /// The kernel selection, made once before the first BLAS call (any `BLAS` member triggers it).
    package static var kernelSelection: BLASKernelSelection { selection }

    private static let selection: BLASKernelSelection = selectKernels()

    /// The core OpenBLAS uses now (nil for a BLAS that does not say).
    package static var currentCore: String? { openblas_get_corename().map { String(cString: $0) } }

    static var libraryDescription: String {
        guard let config = openblas_get_config() else { return "BLAS (unknown)" }
        return String(cString: config).trimmingCharacters(in: .whitespaces)
    }

    private static func selectKernels() -> BLASKernelSelection {
        let cpu = CPUInfo.current
        let atLoad = currentCore
        var result = BLASKernelSelection(library: libraryDescription, coreAtLoad: atLoad, coreInUse: atLoad, cpu: cpu, note: "")
        let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
        switch BLASKernelSelection.plan(reportedCore: atLoad, cpu: cpu, userCoreType: user) {
        case let .keep(reason):
            result.note = reason
        case let .switchTo(candidates):
            guard let original = atLoad else { break }
            var failures: [String] = []
            for candidate in candidates {
                guard switchCore(to: candidate) else {
                    failures.append("\(candidate) did not load")
                    _ = switchCore(to: original)
                    continue
                }
                if gemmsAreCorrect() {
                    result.coreInUse = currentCore
                    result.note = "OpenBLAS chose \(original) for this \(cpu.vectorLevel) CPU; re-selected \(candidate)"
                        + (failures.isEmpty ? "" : " (\(failures.joined(separator: ", ")))")
                    return result
                }
                failures.append("\(candidate) computed wrong GEMMs")
                _ = switchCore(to: original)
            }
            result.coreInUse = currentCore
            result.note = "kept \(original): " + (failures.isEmpty ? "re-selection unavailable" : failures.joined(separator: ", "))
        }
        return result
    }

    /// Re-runs OpenBLAS's core selection with `OPENBLAS_CORETYPE=name` (restored afterwards). True when the core in
    /// use is then `name`. Only before any other BLAS call: OpenBLAS's tables are swapped under it.
    package static func switchCore(to name: String) -> Bool {
        #if canImport(Glibc)
        guard BLASKernelSelection.level(ofCore: name) != nil,  // only names every DYNAMIC_ARCH build knows
              let quit = dlsym(nil /* RTLD_DEFAULT */, "gotoblas_dynamic_quit"),
              let initialise = dlsym(nil, "gotoblas_dynamic_init") else { return false }
        let previous = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        setenv("OPENBLAS_CORETYPE", name, 1)
        unsafeBitCast(quit, to: (@convention(c) () -> Void).self)()
        unsafeBitCast(initialise, to: (@convention(c) () -> Void).self)()
        if let previous { setenv("OPENBLAS_CORETYPE", previous, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
        return currentCore?.lowercased() == name.lowercased()
        #else
        return false
        #endif
    }

    /// Checks a few sgemms (each transpose, awkward sizes, alpha and beta, large enough to use OpenBLAS's threads
    /// and several cache blocks) against a plain loop in double precision.
    package static func gemmsAreCorrect() -> Bool {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int32(truncatingIfNeeded: state >> 33)) / Float(Int32.max)
        }
        let cases: [(Bool, Bool, Int, Int, Int, Float, Float)] = [
            (false, false, 67, 131, 263, 1, 0), (true, false, 33, 517, 45, 1.5, 0.5),
            (false, true, 129, 20, 300, -1, 1), (true, true, 5, 700, 17, 0.25, 0),
        ]
        for (transA, transB, m, n, k, alpha, beta) in cases {
            let a = (0..<(m * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
            var c = (0..<(m * n)).map { _ in next() }
            let c0 = c
            a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
                cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                            Int32(m), Int32(n), Int32(k), alpha, a.baseAddress, Int32(transA ? m : k),
                            b.baseAddress, Int32(transB ? k : n), beta, c.baseAddress, Int32(n))
            } } }
            var errorSquared = 0.0, normSquared = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k {
                        sum += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                    }
                    let expected = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j])
                    errorSquared += (Double(c[i * n + j]) - expected) * (Double(c[i * n + j]) - expected)
                    normSquared += expected * expected
                }
            }
            guard errorSquared.isFinite, errorSquared <= 1e-10 * max(normSquared, 1) else { return false }
        }
        return true
    }
}
