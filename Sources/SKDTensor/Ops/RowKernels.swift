// Row reductions (and the softmax kernels' exp, from FastMath), shared by the normalisation and softmax kernels.
//
// Swift does not reassociate float additions, so a plain `for` loop that sums a row runs one add per add latency
// (≈ 4× slower than the data allows). These helpers keep SIMD accumulators instead. Element-wise loops need no
// help: they vectorise as written, which is why `FastMath.exp` is plain scalar code without branches.

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

    /// `eˣ`, branch-free (see `FastMath.exp`): −∞ and arguments below −87.34 give exactly 0.
    @inline(__always)
    static func exp(_ x: Float) -> Float { FastMath.exp(x) }
}
