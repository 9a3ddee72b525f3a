// The row kernels of the C target CSKDKernels, for the ops of SKDTensor and the fused paths of the models.
//
// Swift library targets compile for baseline x86-64 — SSE2, 4 lanes, no FMA — because they may not carry
// `unsafeFlags`. The C target compiles every kernel three times (portable, AVX2 + FMA, AVX-512 F/BW/DQ/VL) and
// calls the widest variant the CPU supports; `VectorRows.setLevel` lets tests and benchmarks choose another.
// Each kernel has one definition: the differentiable ops and the fused inference paths call the same function.

import CSKDKernels

/// Row kernels that run 8 (AVX2 + FMA) or 16 (AVX-512) lanes wide where the CPU allows (results equal the scalar
/// definitions up to rounding; reductions sum in the same order at every level).
package enum VectorRows {
    /// Whether a vectorised level (AVX2 + FMA or AVX-512) is in use.
    package static var isVectorized: Bool { skd_kernels_vectorized() != 0 }

    /// The kernel level in use: 0 portable, 1 AVX2 + FMA, 2 AVX-512. Initially the widest the CPU supports, or
    /// the environment variable `SKD_KERNELS_LEVEL` when set (clamped).
    package static var level: Int { Int(skd_kernels_level()) }

    /// The widest level this CPU supports (0, 1 or 2).
    package static var maxLevel: Int { Int(skd_kernels_max_level()) }

    /// The names of the levels, indexed by level.
    package static let levelNames = ["portable", "AVX2+FMA", "AVX-512"]

    /// Selects the kernel level, clamped to `0...maxLevel`, and returns the level now in use. For tests and
    /// benchmarks; not to be changed while kernels run on other threads.
    @discardableResult
    package static func setLevel(_ level: Int) -> Int {
        Int(skd_kernels_set_level(Int32(clamping: level)))
    }

    // MARK: GELU

    /// `out[i] = gelu(a[i]) · b[i]` (exact erf GELU, as `FastMath.gelu`) for `i` in `0..<count`; `out` may equal
    /// `a` or `b`.
    @inline(__always)
    package static func geluGate(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                count: Int) {
        skd_gelu_gate(out, a, b, count)
    }

    /// `out[i] = gelu(a[i])` (exact erf GELU, as `FastMath.gelu`) for `i` in `0..<count`; `out` may equal `a`.
    @inline(__always)
    package static func gelu(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, count: Int) {
        skd_gelu(out, a, count)
    }

    /// `dx[i] = g[i] · gelu′(x[i])`, `gelu′(x) = Φ(x) + x·φ(x)`; `dx` may equal `g`.
    @inline(__always)
    package static func geluBackward(_ dx: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                    count: Int) {
        skd_gelu_backward(dx, g, x, count)
    }

    /// The backward of `gelu(x1)·x2`: `d1 = g·x2·gelu′(x1)`, `d2 = g·gelu(x1)`. The outputs must not overlap the
    /// inputs or each other.
    @inline(__always)
    package static func geluGateBackward(_ d1: UnsafeMutablePointer<Float>, _ d2: UnsafeMutablePointer<Float>,
                                        _ g: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>,
                                        count: Int) {
        skd_gelu_gate_backward(d1, d2, g, x1, x2, count)
    }

    // MARK: Softmax

    /// `y = softmax(x)` over one row of `count` values (max-subtracted; −∞ gives exactly 0); `y` may equal `x`.
    @inline(__always)
    package static func softmaxRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        skd_softmax_row(y, x, count)
    }

    /// `dx[j] = scale · y[j] · (g[j] − Σₖ g[k]·y[k])` over one row (`y` the softmax output); `dx` may equal `g`.
    @inline(__always)
    package static func softmaxBackwardRow(_ dx: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                          _ y: UnsafePointer<Float>, count: Int, scale: Float = 1) {
        skd_softmax_backward_row(dx, g, y, count, scale)
    }

    // MARK: Channel LayerNorm

    /// Restormer's channel LayerNorm of `count` consecutive pixels: channel `ch` of pixel `j` is
    /// `x[ch·xStride + j]`, written to `y[ch·yStride + j]`. WithBias (`bias` non-nil) `(x − μ)·r·w + b`, BiasFree
    /// `x·(r·w)`, with `r = 1/√(σ² + eps)`. The mean and `r` of every pixel go to `mean` and `rstd` (`count` each).
    /// `y` must not overlap `x`, `mean` or `rstd`.
    @inline(__always)
    package static func layerNormChannels(
        _ x: UnsafePointer<Float>, xStride: Int, _ y: UnsafeMutablePointer<Float>, yStride: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, channels: Int, count: Int, eps: Float,
        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>
    ) {
        skd_layernorm_channels_forward(x, xStride, y, yStride, weight, bias, channels, count, eps, mean, rstd)
    }

    /// The backward of `layerNormChannels` for `count` pixels (channel planes `stride` apart in x, g and dx):
    /// `dx` if non-nil; `dw[ch] = Σ g·z`, `db[ch] = Σ g` over these pixels (written) if non-nil.
    /// `scratch` holds `3·count` floats.
    @inline(__always)
    package static func layerNormChannelsBackward(
        _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, stride: Int, weight: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, channels: Int, count: Int, withBias: Bool,
        dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
        scratch: UnsafeMutablePointer<Float>
    ) {
        skd_layernorm_channels_backward(x, g, stride, weight, mean, rstd, channels, count, withBias ? 1 : 0,
                                        dx, dw, db, scratch)
    }

    // MARK: Depthwise rows

    /// `out[i] += Σ_kj w[kj] · src[i + kj − padding]` for `i` in `0..<outCount`, terms reading outside
    /// `0..<inCount` omitted: one kernel row of a stride-1 depthwise convolution added into an output row.
    /// `out` must not overlap `src`.
    @inline(__always)
    package static func depthwiseRow(_ out: UnsafeMutablePointer<Float>, outCount: Int, _ src: UnsafePointer<Float>,
                                    inCount: Int, weights: UnsafePointer<Float>, kernel: Int, padding: Int) {
        skd_depthwise_row(out, outCount, src, inCount, weights, kernel, padding)
    }

    /// `out[i] = bias + Σ_(ki: rows[ki] non-nil) Σ_kj w[ki·kernelW + kj] · rows[ki][i + kj − padding]` for `i` in
    /// `0..<outCount`, terms reading outside `0..<inCount` omitted: one whole output row of a stride-1 depthwise
    /// convolution, all `kernelH` kernel rows (nil for rows in the vertical padding) in one pass. `out` must not
    /// overlap the rows.
    @inline(__always)
    package static func depthwiseOutputRow(_ out: UnsafeMutablePointer<Float>, outCount: Int,
                                          rows: UnsafePointer<UnsafePointer<Float>?>, kernelH: Int, inCount: Int,
                                          weights: UnsafePointer<Float>, kernelW: Int, padding: Int, bias: Float) {
        skd_depthwise_output_row(out, outCount, rows, kernelH, inCount, weights, kernelW, padding, bias)
    }

    /// `gw[ki·kW + kj] += Σ_(oh, ow) g[oh, ow] · x[oh + ki − padH, ow + kj − padW]` over the terms inside the plane:
    /// the weight gradient of one plane of a stride-1, dilation-1 depthwise convolution (`g` is `outH × outW`, `x`
    /// is `height × width`), summed in 16 float lanes per tap and added in Double.
    @inline(__always)
    package static func depthwisePlaneWeightGradient(
        _ gw: UnsafeMutablePointer<Double>, _ g: UnsafePointer<Float>, outH: Int, outW: Int, _ x: UnsafePointer<Float>,
        height: Int, width: Int, kernelH: Int, kernelW: Int, padH: Int, padW: Int
    ) {
        skd_depthwise_plane_weight_grad(gw, g, outH, outW, x, height, width, kernelH, kernelW, padH, padW)
    }

    // MARK: Adam

    /// torch.optim.Adam's float32 update of `count` parameters (see `skd_adam_update`); every level gives the same
    /// bits.
    @inline(__always)
    package static func adamUpdate(
        parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
        firstMoments m: UnsafeMutablePointer<Float>, secondMoments v: UnsafeMutablePointer<Float>, count: Int,
        weightDecay: Float, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float, stepSize: Float,
        correction2: Float, eps: Float
    ) {
        skd_adam_update(p, g, m, v, count, weightDecay, oneMinusBeta1, beta2, oneMinusBeta2, stepSize, correction2, eps)
    }
}
