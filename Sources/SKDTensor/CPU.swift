// What processor this is and which vector instruction sets it can run (cpuid + xgetbv, through CSKDKernels).

import CSKDKernels

/// The processor SwiftSKD runs on: identity and the instruction sets it can execute.
package struct CPUInfo: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Instruction-set features. A feature is present only when the CPU has it *and* the operating system saves
    /// the registers it uses, i.e. when code using it can run.
    package struct Features: OptionSet, Sendable, Hashable, Codable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }

        package static let sse3 = Features(rawValue: UInt32(SKD_CPU_SSE3))
        package static let ssse3 = Features(rawValue: UInt32(SKD_CPU_SSSE3))
        package static let sse41 = Features(rawValue: UInt32(SKD_CPU_SSE41))
        package static let sse42 = Features(rawValue: UInt32(SKD_CPU_SSE42))
        package static let avx = Features(rawValue: UInt32(SKD_CPU_AVX))
        package static let fma = Features(rawValue: UInt32(SKD_CPU_FMA))
        package static let avx2 = Features(rawValue: UInt32(SKD_CPU_AVX2))
        package static let avx512f = Features(rawValue: UInt32(SKD_CPU_AVX512F))
        package static let avx512bw = Features(rawValue: UInt32(SKD_CPU_AVX512BW))
        package static let avx512dq = Features(rawValue: UInt32(SKD_CPU_AVX512DQ))
        package static let avx512vl = Features(rawValue: UInt32(SKD_CPU_AVX512VL))
        package static let avx512bf16 = Features(rawValue: UInt32(SKD_CPU_AVX512BF16))
        package static let avx512fp16 = Features(rawValue: UInt32(SKD_CPU_AVX512FP16))
        package static let amxTile = Features(rawValue: UInt32(SKD_CPU_AMX_TILE))
        package static let amxBF16 = Features(rawValue: UInt32(SKD_CPU_AMX_BF16))
        package static let f16c = Features(rawValue: UInt32(SKD_CPU_F16C))

        /// Every feature with its conventional (Linux `/proc/cpuinfo`) name, in a stable order.
        package static let named: [(Features, String)] = [
            (.sse3, "sse3"), (.ssse3, "ssse3"), (.sse41, "sse4_1"), (.sse42, "sse4_2"), (.avx, "avx"), (.f16c, "f16c"),
            (.fma, "fma"), (.avx2, "avx2"), (.avx512f, "avx512f"), (.avx512bw, "avx512bw"), (.avx512dq, "avx512dq"),
            (.avx512vl, "avx512vl"), (.avx512bf16, "avx512_bf16"), (.avx512fp16, "avx512_fp16"),
            (.amxTile, "amx_tile"), (.amxBF16, "amx_bf16"),
        ]

        /// The names of the features present, e.g. `["sse3", …, "avx512f", …]`.
        package var names: [String] { Features.named.filter { contains($0.0) }.map(\.1) }
    }

    /// "GenuineIntel", "AuthenticAMD", … (empty off x86).
    package var vendor: String
    /// The brand string, e.g. "Intel(R) Xeon(R) Processor" (empty when the CPU reports none).
    package var brand: String
    /// Display family (e.g. 6 for Intel Core/Xeon, 25 for AMD Zen 3/4).
    package var family: Int
    /// Display model within the family (e.g. 207 for a 5th-generation Xeon).
    package var model: Int
    /// What the processor can run.
    package var features: Features

    /// A description from its parts (used by tests and by the kernel-selection seam).
    package init(vendor: String, brand: String, family: Int, model: Int, features: Features) {
        self.vendor = vendor
        self.brand = brand
        self.family = family
        self.model = model
        self.features = features
    }

    /// The processor this process runs on (read once).
    package static let current: CPUInfo = {
        var info = skd_cpu_info()
        skd_cpu_query(&info)
        func string<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return CPUInfo(vendor: string(info.vendor), brand: string(info.brand), family: Int(info.family),
                       model: Int(info.model), features: Features(rawValue: UInt32(info.features)))
    }()

    /// The widest single-precision vector arithmetic the processor can run.
    package var vectorLevel: VectorLevel {
        if features.isSuperset(of: [.avx512f, .avx512bw, .avx512dq, .avx512vl]) { return .avx512 }
        if features.isSuperset(of: [.avx2, .fma]) { return .avx2 }
        if features.contains(.avx) { return .avx }
        return .sse
    }

    /// E.g. `Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207)`.
    package var description: String {
        let name = brand.isEmpty ? "unknown CPU" : brand
        return vendor.isEmpty ? name : "\(name) (\(vendor) family \(family) model \(model))"
    }
}

/// The width of single-precision vector code: what a CPU can run, or what a set of kernels uses.
package enum VectorLevel: Int, Sendable, Comparable, Codable, CustomStringConvertible {
    /// 128-bit SSE (x86-64's baseline).
    case sse = 0
    /// 256-bit AVX without FMA.
    case avx = 1
    /// 256-bit AVX2 with FMA.
    case avx2 = 2
    /// 512-bit AVX-512 (F, BW, DQ, VL).
    case avx512 = 3

    package static func < (a: VectorLevel, b: VectorLevel) -> Bool { a.rawValue < b.rawValue }

    package var description: String {
        switch self {
        case .sse: return "SSE"
        case .avx: return "AVX"
        case .avx2: return "AVX2+FMA"
        case .avx512: return "AVX-512"
        }
    }
}
