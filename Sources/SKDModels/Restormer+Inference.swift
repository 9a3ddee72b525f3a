// The inference path of Restormer's transformer block: no full-size intermediate except what attention needs.
//
// Composed from ops, one block at 512×512 writes and reads back LayerNorm(x) (C planes), the 1×1 output (3C or
// 2·hidden planes), the depthwise output (as many again), the gate and every residual sum — at the refinement
// level of restormer-s (64 channels, hidden 170) the feed-forward alone allocates 340 + 170 + 64·3 planes of
// 1 MiB each. Here both halves run in bands of rows: LayerNorm, the 1×1 convolution (one GEMM per band) and the
// depthwise 3×3 work on a few rows that stay in cache, and only the block's real outputs reach memory:
//   attention half:    qkv = dw3×3(W_qkv · LN₁(x))        (all of it: the attention is global over the pixels)
//                      y   = x + W_out · mdta(qkv)          (one GEMM, accumulated onto a copy of x)
//   feed-forward half: out = y + W_po · (gelu(d₁) ⊙ d₂),  d = dw3×3(W_pi · LN₂(y))   (band by band)
// Between bands the two halo rows of the 1×1 output are kept (moved to the top of the band buffer), so no row is
// computed twice. The arithmetic is that of the composed ops; only the GEMM blocking differs (results agree to
// float rounding).

import Foundation
import SKDNN
import SKDTensor

/// The band buffers and the running state of "depthwise 3×3 of a 1×1 convolution of a channel LayerNorm" over one
/// image, advanced band by band from the top.
struct BandedNormPointwiseDepthwise {
    let channels: Int, height: Int, width: Int
    /// Output channels of the 1×1 convolution (= channels of the depthwise one).
    let mid: Int
    let rowsPerBand: Int
    let normWeight: UnsafePointer<Float>, normBias: UnsafePointer<Float>?, eps: Float
    let pointwise: UnsafePointer<Float>, pointwiseBias: UnsafePointer<Float>?
    let depthwise: UnsafePointer<Float>, depthwiseBias: UnsafePointer<Float>?
    /// `[mid, rowsPerBand + 2, width]`: the 1×1 output of global rows `base ..< base + rowsPerBand + 2`.
    let band: UnsafeMutablePointer<Float>
    /// `[channels, rowsPerBand + 2, width]`: the LayerNorm output of the rows being added.
    let normed: UnsafeMutablePointer<Float>
    var slots: Int { rowsPerBand + 2 }
    /// The global row held in slot 0, and one past the last row computed.
    private(set) var base = 0
    private var computedEnd = 0

    /// - Parameter outputChannels: the channels of the 1×1 (and depthwise) convolution to compute; all by default.
    ///   A sub-range computes only those output channels (e.g. the q and k thirds of a qkv convolution).
    init(channels: Int, height: Int, width: Int, budgetBytes: Int,
         norm: (weight: Tensor, bias: Tensor?), eps: Float, pointwise: Conv2d, depthwise: Conv2d,
         outputChannels: Range<Int>? = nil) {
        let range = outputChannels ?? 0..<pointwise.weight.shape[0]
        let lo = range.lowerBound, mid = range.count
        self.channels = channels; self.height = height; self.width = width; self.mid = mid
        rowsPerBand = Swift.max(1, Swift.min(height, budgetBytes / Swift.max(1, mid * width * 4)))
        normWeight = UnsafePointer(norm.weight.pointer); normBias = norm.bias.map { UnsafePointer($0.pointer) }
        self.eps = eps
        self.pointwise = UnsafePointer(pointwise.weight.pointer + lo * channels)
        pointwiseBias = pointwise.bias.map { UnsafePointer($0.pointer + lo) }
        self.depthwise = UnsafePointer(depthwise.weight.pointer + lo * 9)
        depthwiseBias = depthwise.bias.map { UnsafePointer($0.pointer + lo) }
        band = .allocate(capacity: mid * (rowsPerBand + 2) * width)
        normed = .allocate(capacity: channels * (rowsPerBand + 2) * width)
    }

    func deallocate() { band.deallocate(); normed.deallocate() }

    /// Starts a new image.
    mutating func reset() { base = 0; computedEnd = 0 }

    /// Makes rows `r0 − 1 ..< r1 + 1` of the 1×1 output available (those inside the image), computing only the
    /// rows not yet computed for the previous band.
    mutating func advance(image x: UnsafePointer<Float>, rows r0: Int, _ r1: Int) {
        let newBase = r0 - 1, w = width, plane = height * width, slotStride = slots * w
        // Keep the rows the previous band already computed (the halo), moved to their new slots.
        let keepFrom = Swift.max(newBase, 0)
        if computedEnd > keepFrom && newBase != base {
            let count = (computedEnd - keepFrom) * w, from = (keepFrom - base) * w, to = (keepFrom - newBase) * w
            for ch in 0..<mid { (band + ch * slotStride + to).update(from: band + ch * slotStride + from, count: count) }
        }
        base = newBase
        let g0 = Swift.max(computedEnd, 0), g1 = Swift.min(r1 + 1, height)
        guard g1 > g0 else { return }
        let pixels = (g1 - g0) * w
        layerNorm(x + g0 * w, sourceStride: plane, pixels: pixels)
        let out = band + (g0 - base) * w
        if let bias = pointwiseBias {
            for ch in 0..<mid { (out + ch * slotStride).update(repeating: bias[ch], count: pixels) }
        }
        BLAS.sgemm(m: mid, n: pixels, k: channels, a: pointwise, lda: channels, b: normed, ldb: pixels,
                   beta: pointwiseBias == nil ? 0 : 1, c: out, ldc: slotStride)
        computedEnd = g1
    }

    /// Restormer's channel LayerNorm of `pixels` consecutive pixels (channel planes `sourceStride` apart) into
    /// `normed` (`[channels, pixels]`): the C kernel of `Tensor.layerNormChannels`, in blocks across cores.
    private func layerNorm(_ x: UnsafePointer<Float>, sourceStride: Int, pixels: Int) {
        let c = channels, dst = normed, wp = normWeight, bp = normBias, eps = eps
        let block = 256
        Parallel.forEach((pixels + block - 1) / block, cost: 3 * c * block) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * block) { scratch in
                let mu = scratch.baseAddress!, rs = mu + block
                for b in range {
                    let p0 = b * block, len = Swift.min(block, pixels - p0)
                    VectorRows.layerNormChannels(x + p0, xStride: sourceStride, dst + p0, yStride: pixels,
                                                 weight: wp, bias: bp, channels: c, count: len, eps: eps,
                                                 mean: mu, rstd: rs)
                }
            }
        }
    }

    /// Row `oh` (global, inside the current band) of the depthwise 3×3 (padding 1) of channel `ch` into `row`,
    /// with the row kernel of `conv2d`'s depthwise path (bias, then the three kernel rows).
    @inline(__always)
    func convolveRow(channel ch: Int, row oh: Int, into row: UnsafeMutablePointer<Float>) {
        let w = width, plane = band + ch * slots * w
        // The row kernel of conv2d's depthwise path (C, AVX2 / AVX-512 where available), all three kernel rows at once.
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 3) { rows in
            for ki in 0..<3 {
                let ih = oh - 1 + ki
                rows[ki] = ih < 0 || ih >= height ? nil : UnsafePointer(plane + (ih - base) * w)
            }
            VectorRows.depthwiseOutputRow(row, outCount: w, rows: UnsafePointer(rows.baseAddress!), kernelH: 3,
                                          inCount: w, weights: depthwise + ch * 9, kernelW: 3, padding: 1,
                                          bias: depthwiseBias?[ch] ?? 0)
        }
    }
}

extension RestormerTransformerBlock {
    /// The bytes of 1×1-convolution output one row band of the inference path may hold (at least one row is
    /// always taken). 4 MiB keeps a band and its LayerNorm rows within the L2/L3 caches; a tuning knob, not
    /// thread-safe to change while a forward pass runs.
    package static var inferenceBandBytes = 4 << 20

    /// Whether this call may take the fused inference path: nothing needs a gradient.
    func runsInference(_ x: Tensor) -> Bool {
        if !GradMode.isEnabled { return true }
        if x.requiresGrad { return false }
        return !parameters().contains { $0.requiresGrad }
    }

    /// `y = x + attn(norm1(x))`, then `y + ffn(norm2(y))`, without recording and without the intermediates.
    ///
    /// - Parameter x: `[N, dim, H, W]`.
    /// - Returns: `[N, dim, H, W]`.
    func inferenceForward(_ x: Tensor) -> Tensor {
        let temperature = attn.temperature
        let y = noGrad {
            channelAttentionResidual(x, norm: (norm1.body.weight, norm1.body.bias), qkv: attn.qkv, dwconv: attn.qkvDwconv,
                                     projectOut: attn.projectOut, heads: attn.numHeads, bandBytes: Self.inferenceBandBytes) {
                ($0 * temperature).softmax()
            }
        }
        return noGrad { feedForwardResidual(y) }
    }

    /// `y + project_out(gelu(x₁)·x₂)` with `x₁, x₂ = dwconv(project_in(norm2(y)))`, band by band, in place:
    /// `y` must be referenced by nothing else.
    private func feedForwardResidual(_ y: Tensor) -> Tensor {
        let (n, c, h, w) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        let mid = ffn.projectIn.weight.shape[0], hidden = mid / 2
        // Accumulated onto y itself: a band's GEMM writes rows r0..<r1, and every later band reads (through its
        // LayerNorm) only rows from r1 + 1 on, already read by the time those rows are written. `y` is this
        // block's own intermediate, referenced nowhere else.
        let out = y
        var stage = BandedNormPointwiseDepthwise(
            channels: c, height: h, width: w, budgetBytes: Self.inferenceBandBytes,
            norm: (norm2.body.weight, norm2.body.bias), eps: 1e-5, pointwise: ffn.projectIn, depthwise: ffn.dwconv)
        let gate = UnsafeMutablePointer<Float>.allocate(capacity: hidden * stage.rowsPerBand * w)
        defer { stage.deallocate(); gate.deallocate() }
        let plane = h * w
        let projectOut = UnsafePointer(ffn.projectOut.weight.pointer), outBias = ffn.projectOut.bias?.pointer
        for image in 0..<n {
            stage.reset()
            let yi = UnsafePointer(y.pointer + image * c * plane), oi = out.pointer + image * c * plane
            for r0 in stride(from: 0, to: h, by: stage.rowsPerBand) {
                let r1 = Swift.min(h, r0 + stage.rowsPerBand), pixels = (r1 - r0) * w
                stage.advance(image: yi, rows: r0, r1)
                let s = stage
                Parallel.forEach(hidden, cost: pixels * 24) { channels in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * w) { scratch in
                        let first = scratch.baseAddress!, second = first + w
                        for ch in channels {
                            for oh in r0..<r1 {
                                s.convolveRow(channel: ch, row: oh, into: first)
                                s.convolveRow(channel: ch + hidden, row: oh, into: second)
                                VectorRows.geluGate(gate + ch * pixels + (oh - r0) * w, first, second, count: w)
                            }
                        }
                    }
                }
                // out = y (+ bias) + W_po · gate, for the band's rows of every channel.
                if let outBias {
                    for ch in 0..<c {
                        let dst = oi + ch * plane + r0 * w, b = outBias[ch]
                        for p in 0..<pixels { dst[p] += b }
                    }
                }
                BLAS.sgemm(m: c, n: pixels, k: hidden, a: projectOut, lda: hidden, b: gate, ldb: pixels,
                           beta: 1, c: oi + r0 * w, ldc: plane)
            }
        }
        return out
    }
}

// MARK: - Shared by the inference paths of Restormer and DRSformer

/// `depthwise(pointwise(LayerNorm(x)))` — a 3×3 depthwise convolution (padding 1) of a 1×1 convolution of the
/// channel LayerNorm (eps 1e-5; BiasFree when `norm.bias` is nil) — computed band by band without recording.
///
/// - Parameters:
///   - x: `[N, C, H, W]`.
///   - norm: LayerNorm weight `[C]` and bias `[C]` or nil.
///   - pointwise: a 1×1 convolution `C → M`.
///   - depthwise: a 3×3 depthwise convolution over `M` channels, padding 1.
///   - bandBytes: the 1×1 output one band may hold.
/// - Returns: `[N, M, H, W]`.
func normPointwiseDepthwise(_ x: Tensor, norm: (weight: Tensor, bias: Tensor?), pointwise: Conv2d, depthwise: Conv2d,
                            bandBytes: Int) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let mid = pointwise.weight.shape[0]
    precondition(pointwise.weight.shape == [mid, c, 1, 1] && depthwise.weight.shape == [mid, 1, 3, 3],
                 "normPointwiseDepthwise: convolutions \(pointwise.weight.shape), \(depthwise.weight.shape) for input \(x.shape)")
    let out = Tensor(uninitialized: [n, mid, h, w])
    var stage = BandedNormPointwiseDepthwise(
        channels: c, height: h, width: w, budgetBytes: bandBytes,
        norm: norm, eps: 1e-5, pointwise: pointwise, depthwise: depthwise)
    defer { stage.deallocate() }
    let plane = h * w
    for image in 0..<n {
        stage.reset()
        let xi = UnsafePointer(x.pointer + image * c * plane), oi = out.pointer + image * mid * plane
        for r0 in stride(from: 0, to: h, by: stage.rowsPerBand) {
            let r1 = Swift.min(h, r0 + stage.rowsPerBand)
            stage.advance(image: xi, rows: r0, r1)
            let s = stage
            Parallel.forEach(mid, cost: (r1 - r0) * w * 12) { channels in
                for ch in channels {
                    for oh in r0..<r1 { s.convolveRow(channel: ch, row: oh, into: oi + ch * plane + oh * w) }
                }
            }
        }
    }
    return out
}

/// `residual + bias` broadcast over each channel plane: the start of an output that 1×1 GEMMs then accumulate onto.
///
/// - Parameters:
///   - residual: `[N, C, H, W]`.
///   - bias: `[C]`, or `nil` (a copy of `residual`).
/// - Returns: `[N, C, H, W]`.
func residualPlusBias(_ residual: Tensor, bias: Tensor?) -> Tensor {
    let (n, c) = (residual.shape[0], residual.shape[1]), plane = residual.count / max(1, n * c)
    let out = Tensor(uninitialized: residual.shape)
    let src = residual.pointer, dst = out.pointer
    if let bias = bias?.pointer {
        Parallel.forEach(n * c, cost: plane) { planes in
            for p in planes {
                let b = bias[p % c], s = src + p * plane, d = dst + p * plane
                for i in 0..<plane { d[i] = s[i] + b }
            }
        }
    } else {
        dst.update(from: src, count: residual.count)
    }
    return out
}

/// `residual + conv1x1(x)` (weight `[C, Cin, 1, 1]`, optional bias): one GEMM accumulated onto a copy of the
/// residual. No gradient.
func pointwiseResidual(_ x: Tensor, _ conv: Conv2d, adding residual: Tensor) -> Tensor {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let cout = conv.weight.shape[0], plane = h * w
    precondition(residual.shape == [n, cout, h, w], "pointwiseResidual: residual \(residual.shape) for \([n, cout, h, w])")
    let out = residualPlusBias(residual, bias: conv.bias)
    let dst = out.pointer
    for image in 0..<n {
        BLAS.sgemm(m: cout, n: plane, k: cin, a: conv.weight.pointer, lda: cin, b: x.pointer + image * cin * plane,
                   beta: 1, c: dst + image * cout * plane)
    }
    return out
}

/// `x + project_out(blockdiag(A)·v)`: the attention half of a Restormer/DRSformer block, where
/// `q, k, v = dw3×3(W_qkv · LN(x))` and `A = attention(q̂·k̂ᵀ)` per head (q̂, k̂ the rows of q, k L2-normalised over
/// the pixels, ε = 1e-12), in two banded passes and without any full-size intermediate:
///   1. q and k band by band: the Gram matrices q·kᵀ and the row norms are sums over pixels, accumulated per band;
///   2. v band by band, multiplied by `W_out·blockdiag(A)` (one C×C matrix per image) and added onto x's rows.
/// LayerNorm is computed in both passes; everything else once.
///
/// - Parameters:
///   - x: `[N, C, H, W]`.
///   - norm: LayerNorm weight `[C]` and bias `[C]` or nil (BiasFree).
///   - qkv: 1×1 `C → 3C`; `dwconv`: 3×3 depthwise over 3C; `projectOut`: 1×1 `C → C`.
///   - heads: attention heads; must divide C.
///   - attention: maps the cosines `[N, heads, C/heads, C/heads]` to the attention matrices of the same shape.
/// - Returns: `[N, C, H, W]`.
func channelAttentionResidual(_ x: Tensor, norm: (weight: Tensor, bias: Tensor?), qkv: Conv2d, dwconv: Conv2d,
                              projectOut: Conv2d, heads: Int, bandBytes: Int,
                              attention: (Tensor) -> Tensor) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(qkv.weight.shape == [3 * c, c, 1, 1] && dwconv.weight.shape == [3 * c, 1, 3, 3]
                 && projectOut.weight.shape == [c, c, 1, 1] && c % heads == 0,
                 "channelAttentionResidual: convolutions \(qkv.weight.shape), \(dwconv.weight.shape), \(projectOut.weight.shape) and \(heads) heads for input \(x.shape)")
    let ch = c / heads, plane = h * w
    // Pass 1: Gram matrices [N, heads, ch, ch] and squared norms of the 2C q/k rows.
    let gram = Tensor(zeros: [n, heads, ch, ch])
    var squares = [Double](repeating: 0, count: n * 2 * c)
    do {
        var stage = BandedNormPointwiseDepthwise(
            channels: c, height: h, width: w, budgetBytes: bandBytes, norm: norm, eps: 1e-5,
            pointwise: qkv, depthwise: dwconv, outputChannels: 0..<(2 * c))
        let qk = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c * stage.rowsPerBand * w)
        defer { stage.deallocate(); qk.deallocate() }
        squares.withUnsafeMutableBufferPointer { sq in
            let squares = sq.baseAddress!
            for image in 0..<n {
                stage.reset()
                let xi = UnsafePointer(x.pointer + image * c * plane)
                for r0 in stride(from: 0, to: h, by: stage.rowsPerBand) {
                    let r1 = Swift.min(h, r0 + stage.rowsPerBand), pixels = (r1 - r0) * w
                    stage.advance(image: xi, rows: r0, r1)
                    let s = stage
                    Parallel.forEach(2 * c, cost: pixels * 14) { channels in
                        for row in channels {
                            let dst = qk + row * pixels
                            var total: Float = 0
                            for oh in r0..<r1 {
                                let line = dst + (oh - r0) * w
                                s.convolveRow(channel: row, row: oh, into: line)
                                var acc = SIMD8<Float>()
                                var j = 0
                                while j + 8 <= w { let v = UnsafeRawPointer(line + j).loadUnaligned(as: SIMD8<Float>.self); acc += v * v; j += 8 }
                                var part = acc.sum()
                                while j < w { part += line[j] * line[j]; j += 1 }
                                total += part
                            }
                            squares[image * 2 * c + row] += Double(total)
                        }
                    }
                    for head in 0..<heads {
                        let q = qk + head * ch * pixels, k = qk + (c + head * ch) * pixels
                        BLAS.sgemm(transB: true, m: ch, n: ch, k: pixels, a: q, lda: pixels, b: k, ldb: pixels,
                                   beta: 1, c: gram.pointer + (image * heads + head) * ch * ch)
                    }
                }
            }
        }
    }
    // Cosines, then the attention matrices (small: ops are fine here).
    let gp = gram.pointer
    for image in 0..<n {
        for head in 0..<heads {
            let g = gp + (image * heads + head) * ch * ch
            for i in 0..<ch {
                let nq = squares[image * 2 * c + head * ch + i].squareRoot()
                let rq = Float(nq > 1e-12 ? 1 / nq : 1e12)
                for j in 0..<ch {
                    let nk = squares[image * 2 * c + c + head * ch + j].squareRoot()
                    g[i * ch + j] *= rq * Float(nk > 1e-12 ? 1 / nk : 1e12)
                }
            }
        }
    }
    let attended = noGrad { attention(gram) }
    precondition(attended.shape == gram.shape, "channelAttentionResidual: attention returned \(attended.shape), expected \(gram.shape)")
    // M = W_out · blockdiag(A) per image, [N, C, C].
    let mixing = Tensor(uninitialized: [n, c, c])
    for image in 0..<n {
        for head in 0..<heads {
            BLAS.sgemm(m: c, n: ch, k: ch, a: projectOut.weight.pointer + head * ch, lda: c,
                       b: attended.pointer + (image * heads + head) * ch * ch, ldb: ch,
                       c: mixing.pointer + image * c * c + head * ch, ldc: c)
        }
    }
    // Pass 2: v band by band; out = x (+ bias) + M·v.
    let out = Tensor(uninitialized: x.shape)
    var stage = BandedNormPointwiseDepthwise(
        channels: c, height: h, width: w, budgetBytes: bandBytes, norm: norm, eps: 1e-5,
        pointwise: qkv, depthwise: dwconv, outputChannels: (2 * c)..<(3 * c))
    let v = UnsafeMutablePointer<Float>.allocate(capacity: c * stage.rowsPerBand * w)
    defer { stage.deallocate(); v.deallocate() }
    let outBias = projectOut.bias?.pointer
    for image in 0..<n {
        stage.reset()
        let xi = UnsafePointer(x.pointer + image * c * plane), oi = out.pointer + image * c * plane
        for r0 in stride(from: 0, to: h, by: stage.rowsPerBand) {
            let r1 = Swift.min(h, r0 + stage.rowsPerBand), pixels = (r1 - r0) * w
            stage.advance(image: xi, rows: r0, r1)
            let s = stage
            Parallel.forEach(c, cost: pixels * 14) { channels in
                for row in channels {
                    for oh in r0..<r1 { s.convolveRow(channel: row, row: oh, into: v + row * pixels + (oh - r0) * w) }
                    let src = xi + row * plane + r0 * w, dst = oi + row * plane + r0 * w
                    if let outBias {
                        let b = outBias[row]
                        for p in 0..<pixels { dst[p] = src[p] + b }
                    } else {
                        dst.update(from: src, count: pixels)
                    }
                }
            }
            BLAS.sgemm(m: c, n: pixels, k: c, a: mixing.pointer + image * c * c, lda: c, b: v, ldb: pixels,
                       beta: 1, c: oi + r0 * w, ldc: plane)
        }
    }
    return out
}
