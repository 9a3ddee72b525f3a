// Branch-free, call-free float32 exp and erf. Their one definition is C (`skd_expf`, `skd_erff` in CSKDKernels.h,
// static inline), used by the row kernels and inlined into Swift loops through these wrappers.
//
// libm's scalar `expf`/`erff` are calls, so a loop over them cannot vectorise; at 512×512 the GELU of a Restormer
// or Uformer block evaluates tens of millions of values, and the libm form was ≈ 8× slower than these. They are
// `@inlinable` so that kernels in other modules (SKDModels, SKDDistill) inline them into their loops too.

import CSKDKernels

/// Vectorisable elementary functions for kernels.
package enum FastMath {
    /// eˣ to ~1 ulp (Cephes' expf range reduction and degree-6 polynomial): the C definition `skd_expf` that the
    /// row kernels use, inlined.
    ///
    /// Arguments below −87.34 (where eˣ leaves the normal range), −∞ included, give exactly 0: a −∞ attention
    /// mask must come out of a softmax as an exact zero. Arguments above 88 saturate at e⁸⁸ (callers pass
    /// max-subtracted or negative values). NaN stays NaN.
    @inlinable @inline(__always)
    package static func exp(_ x: Float) -> Float { skd_expf(x) }

    /// erf(x) within 4·10⁻⁷ absolute: the odd/even rational approximation on [−4, 4] that Eigen and XLA use for
    /// float32 (beyond ±4, erf is ±1 in float32). The C definition `skd_erff` of the row kernels, inlined.
    @inlinable @inline(__always)
    package static func erf(_ a: Float) -> Float { skd_erff(a) }

    /// GELU(x) = ½x·(1 + erf(x/√2)), the exact (erf) form of PyTorch's `F.gelu`, computed as PyTorch does so the
    /// far negative tail has the same absolute accuracy (within 1e-6 of the libm form).
    @inlinable @inline(__always)
    package static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }

    /// GELU(x) and its derivative Φ(x) + x·φ(x).
    @inlinable @inline(__always)
    package static func geluAndSlope(_ x: Float) -> (value: Float, slope: Float) {
        let cdf = 0.5 * (1 + erf(x * 0.70710678118654752))
        let pdf = 0.39894228040143268 * exp(-0.5 * x * x)
        return (x * cdf, cdf + x * pdf)
    }
}
