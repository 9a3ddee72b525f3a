// Row kernels with an AVX2 + FMA variant (the C target CSKDKernels), for the innermost loops of fused paths.
//
// Swift library targets compile for baseline x86-64 — SSE2, 4 lanes, no FMA — because they may not carry
// `unsafeFlags`. The C target compiles each kernel twice, the second time with `target("avx2,fma")`, and picks a
// variant once per process with `__builtin_cpu_supports`; elsewhere the portable variant runs. Profiles of
// restormer-s inference put a quarter of the time in such rows (depthwise 3×3, GELU gate).

import CSKDKernels

/// Row kernels that run 8 lanes wide with FMA where the CPU has AVX2 (results equal the scalar definitions up to
/// rounding).
public enum VectorRows {
    /// Whether the AVX2 + FMA variants are in use on this CPU.
    public static var isVectorized: Bool { skd_kernels_vectorized() != 0 }

    /// `row[i] += w0·line[i−1] + w1·line[i] + w2·line[i+1]` for `i` in `0..<count`, with zeros beyond both ends:
    /// one kernel row of a 3×3 depthwise convolution (stride 1, padding 1) added into an output row.
    ///
    /// - Parameters:
    ///   - row: `count` floats, accumulated into.
    ///   - line: `count` floats of the input row; must not overlap `row`.
    @inline(__always)
    public static func depthwise3Accumulate(_ row: UnsafeMutablePointer<Float>, _ line: UnsafePointer<Float>,
                                            _ w0: Float, _ w1: Float, _ w2: Float, count: Int) {
        skd_depthwise3_row_accumulate(row, line, w0, w1, w2, count)
    }

    /// `out[i] = gelu(a[i]) · b[i]` (exact erf GELU, as `FastMath.gelu`) for `i` in `0..<count`.
    ///
    /// - Parameters:
    ///   - out: `count` floats; must not overlap `a` or `b`.
    ///   - a, b: `count` floats each.
    @inline(__always)
    public static func geluGate(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                count: Int) {
        skd_gelu_gate(out, a, b, count)
    }

    /// `out[i] = gelu(a[i])` (exact erf GELU, as `FastMath.gelu`) for `i` in `0..<count`; `out` may equal `a`.
    @inline(__always)
    public static func gelu(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, count: Int) {
        skd_gelu(out, a, count)
    }
}
