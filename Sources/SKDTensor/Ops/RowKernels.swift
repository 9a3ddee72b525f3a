// Row reductions and a vectorisable exp, shared by the normalisation and softmax kernels.
//
// Swift does not reassociate float additions, so a plain `for` loop that sums a row runs one add per add latency
// (≈ 4× slower than the data allows). These helpers keep SIMD accumulators instead. Element-wise loops need no
// help: they vectorise as written, which is why `RowKernels.exp` is plain scalar code without branches.

import Foundation

/// Vectorised building blocks of the row-wise kernels (internal to SKDTensor).
enum RowKernels {
    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// `Σ p[0..<n]`.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += load8(p + i)
            a1 += load8(p + i + 8)
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }

    /// `Σ (p[i] − shift)` over `0..<n`. With `shift` = one of the values, the mean `shift + Σ/n` stays accurate
    /// even when the values sit far from zero relative to their spread.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int, minus shift: Float) -> Float {
        let m = SIMD8<Float>(repeating: shift)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += load8(p + i) - m
            a1 += load8(p + i + 8) - m
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += p[i] - shift; i += 1 }
        return s
    }

    /// `max p[0..<n]` (−∞ for an empty row).
    @inline(__always)
    static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            let v = load8(p + i)
            a0.replace(with: v, where: v .> a0)
            i += 8
        }
        var m = a0.max()
        while i < n { if p[i] > m { m = p[i] }; i += 1 }
        return m
    }

    /// `Σ a[i]·b[i]` over `0..<n`.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += load8(a + i) * load8(b + i)
            a1 += load8(a + i + 8) * load8(b + i + 8)
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// `Σ (p[i] − mean)²` over `0..<n`: the second pass of a two-pass variance (no cancellation).
    @inline(__always)
    static func sumSquaredDeviation(_ p: UnsafePointer<Float>, mean: Float, _ n: Int) -> Float {
        let m = SIMD8<Float>(repeating: mean)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let d0 = load8(p + i) - m, d1 = load8(p + i + 8) - m
            a0 += d0 * d0
            a1 += d1 * d1
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { let d = p[i] - mean; s += d * d; i += 1 }
        return s
    }

    /// `eˣ` to ~1 ulp (Cephes' expf polynomial), branch-free so that loops over it vectorise
    /// (≈ 3× faster than `Foundation.exp` per element).
    ///
    /// Arguments below −87.34 (where eˣ leaves the normal range), −∞ included, give exactly 0: a −∞ attention
    /// mask must come out of a softmax as an exact zero. Arguments above 88 saturate at e⁸⁸; callers only pass
    /// max-subtracted values (≤ 0). NaN stays NaN.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let lowest: Float = -87.33654
        let xc = Swift.min(Swift.max(x, lowest), 88)
        // Round x·log₂e to the nearest integer with the 1.5·2²³ trick: SSE2 has no vector round instruction,
        // and the integer is then read straight from the mantissa bits.
        let magic: Float = 12_582_912
        let t = xc * 1.442_695_04 + magic
        let k = t - magic
        let n = Int32(bitPattern: t.bitPattern) &- Int32(bitPattern: magic.bitPattern)
        // r = x − k·ln2 in two parts, so that r keeps full precision.
        let r = xc - k * 0.693_359_375 + k * 2.121_944_40e-4
        var p: Float = 1.987_569_150_0e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let e = p * r * r + r + 1
        let scale = Float(bitPattern: UInt32(bitPattern: (n &+ 127) &<< 23))
        return x < lowest ? 0 : e * scale
    }
}
