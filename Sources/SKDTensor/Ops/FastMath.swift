// Branch-free, call-free float32 exp and erf: the one implementation that GELU, the GDFN gate, softmax and the
// MCA softmax all use.
//
// libm's scalar `expf`/`erff` are calls, so a loop over them cannot vectorise; at 512×512 the GELU of a Restormer
// or Uformer block evaluates tens of millions of values, and the libm form was ≈ 8× slower than these. They are
// `@inlinable` so that kernels in other modules (SKDModels, SKDDistill) inline them into their loops too.

/// Vectorisable elementary functions for kernels.
public enum FastMath {
    /// eˣ to ~1 ulp (Cephes' expf range reduction and degree-6 polynomial).
    ///
    /// Arguments below −87.34 (where eˣ leaves the normal range), −∞ included, give exactly 0: a −∞ attention
    /// mask must come out of a softmax as an exact zero. Arguments above 88 saturate at e⁸⁸ (callers pass
    /// max-subtracted or negative values). NaN stays NaN.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
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

    /// erf(x) within 4·10⁻⁷ absolute: the odd/even rational approximation on [−4, 4] that Eigen and XLA use for
    /// float32 (beyond ±4, erf is ±1 in float32).
    @inlinable @inline(__always)
    public static func erf(_ a: Float) -> Float {
        let x = Swift.min(Swift.max(a, -4), 4)
        let x2 = x * x
        var p: Float = -2.72614225801306e-10
        p = p * x2 + 2.77068142495902e-08
        p = p * x2 - 2.10102402082508e-06
        p = p * x2 - 5.69250639462346e-05
        p = p * x2 - 7.34990630326855e-04
        p = p * x2 - 2.95459980854025e-03
        p = p * x2 - 1.60960333262415e-02
        var q: Float = -1.45660718464996e-05
        q = q * x2 - 2.13374055278905e-04
        q = q * x2 - 1.68282697438203e-03
        q = q * x2 - 7.37332916720468e-03
        q = q * x2 - 1.42647390514189e-02
        return x * p / q
    }

    /// GELU(x) = ½x·(1 + erf(x/√2)), the exact (erf) form of PyTorch's `F.gelu`, computed as PyTorch does so the
    /// far negative tail has the same absolute accuracy (within 1e-6 of the libm form).
    @inlinable @inline(__always)
    public static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }

    /// GELU(x) and its derivative Φ(x) + x·φ(x).
    @inlinable @inline(__always)
    public static func geluAndSlope(_ x: Float) -> (value: Float, slope: Float) {
        let cdf = 0.5 * (1 + erf(x * 0.70710678118654752))
        let pdf = 0.39894228040143268 * exp(-0.5 * x * x)
        return (x * cdf, cdf + x * pdf)
    }
}
