// The inference path of DRSformer's sparse transformer block, without recording and without the copies of the
// composed ops.
//
// Attention half: `channelAttentionResidual` (Restormer+Inference.swift) — q, k and v are never stored whole:
// the Gram matrices and norms are accumulated band by band, then v is recomputed band by band and multiplied by
// `W_out·blockdiag(A)`; only the top-k mixing of the small score matrices is DRSformer's own.
// Feed-forward half (MSFN), in bands of rows: for each band, LayerNorm and `project_in` of the band's rows plus a
// 4-row halo on each side (the 5×5 depthwise and the 5×5 grouped convolution each reach 2 rows), the depthwise
// 3×3 and 5×5 convolutions with their ReLU written straight into the two buffers that the grouped convolutions read
// (the official `chunk` + `cat` order), the grouped convolutions, and `project_out` accumulated onto the residual's
// rows of the band. Only the band's interior rows are kept: their receptive field lies inside the band, and at the
// image's borders the band's zero padding is the convolutions' own. No 2·hidden-channel map is ever whole (at
// drsformer-s's first level at 512×512 those were four 170 MiB maps per block); the halo rows are computed twice,
// ~8 % more MSFN arithmetic with the default band.

import Foundation
import SKDNN
import SKDTensor

extension DRSformerTransformerBlock {
    /// The bytes of 1×1-convolution output one row band of the attention input may hold (a tuning knob).
    package static var inferenceBandBytes = 4 << 20

    /// The bytes of `project_in` output (2·hidden channels) one row band of the MSFN inference path may hold, halo
    /// included (at least one row plus the halo is always taken). A tuning knob, not thread-safe to change while a
    /// forward pass runs.
    package static var feedForwardBandBytes = 32 << 20

    /// Whether this call may take the fused inference path: nothing needs a gradient.
    func runsInference(_ x: Tensor) -> Bool {
        if !GradMode.isEnabled { return true }
        if x.requiresGrad { return false }
        return !parameters().contains { $0.requiresGrad }
    }

    /// `y = x + attn(norm1(x))`, then `y + ffn(norm2(y))`, without recording.
    ///
    /// - Parameter x: `[N, dim, H, W]`.
    /// - Returns: `[N, dim, H, W]`.
    func inferenceForward(_ x: Tensor) -> Tensor {
        noGrad {
            let y = channelAttentionResidual(
                x, norm: (norm1.body.weight, norm1.body.bias), qkv: attn.qkv, dwconv: attn.qkvDwconv,
                projectOut: attn.projectOut, heads: attn.numHeads, bandBytes: Self.inferenceBandBytes
            ) { attn.sparseMixing(scores: $0 * attn.temperature) }
            return ffn.inferenceResidual(y, norm: (norm2.body.weight, norm2.body.bias), bandBytes: Self.feedForwardBandBytes)
        }
    }
}

extension DRSformerAttention {
    /// The four masked softmaxes of the scores, mixed with the learned weights (the composed path's ops).
    ///
    /// - Parameter scores: `[N, heads, C, C]`, the cosines times the temperature.
    /// - Returns: `[N, heads, C, C]`, the matrix that multiplies v.
    func sparseMixing(scores: Tensor) -> Tensor {
        let ch = scores.shape[3]
        let negativeInfinity = Tensor(-Float.infinity)
        var mixed: Tensor? = nil
        for (kk, weight) in zip(Self.topKSizes(channelsPerHead: ch), [attn1, attn2, attn3, attn4]) {
            let sparse = Tensor.select(scores.topKMask(kk), scores, negativeInfinity).softmax() * weight
            mixed = mixed.map { $0 + sparse } ?? sparse
        }
        return mixed!
    }
}

extension DRSformerFeedForward {
    /// `y + MSFN(LayerNorm(y))` band by band, without recording: `project_out(cat(relu(g3(cat(b3₁, b5₁))),
    /// relu(g5(cat(b3₂, b5₂)))))` with `b3 = relu(dw3(project_in(LN(y))))`, `b5 = relu(dw5(project_in(LN(y))))` split
    /// into halves ₁, ₂.
    ///
    /// - Parameters:
    ///   - y: `[N, dim, H, W]`, the block's residual stream.
    ///   - norm: the channel LayerNorm's `[dim]` weight and bias (`nil` for BiasFree).
    ///   - bandBytes: the budget of one band's `project_in` output, halo rows included.
    /// - Returns: `[N, dim, H, W]`.
    func inferenceResidual(_ y: Tensor, norm: (weight: Tensor, bias: Tensor?), bandBytes: Int) -> Tensor {
        let (batch, dim, height, width) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        let c2 = projectIn.weight.shape[0], hidden = c2 / 2, plane = height * width
        precondition(projectIn.weight.shape[1] == dim && projectOut.weight.shape == [dim, c2, 1, 1]
                     && mixConv3x3.weight.shape == [hidden, 2, 3, 3] && mixConv5x5.weight.shape == [hidden, 2, 5, 5],
                     "DRSformerFeedForward: weights \(projectIn.weight.shape), \(mixConv3x3.weight.shape), "
                     + "\(mixConv5x5.weight.shape) do not fit a \(dim)-channel input")
        let halo = 4
        let rowsPerBand = max(1, min(height, bandBytes / max(1, c2 * width * 4) - 2 * halo))
        let maxRows = min(height, rowsPerBand + 2 * halo), bandPlane = maxRows * width
        // The residual plus project_out's bias; each band's project_out GEMM accumulates onto its rows.
        let out = residualPlusBias(y, bias: projectOut.bias)
        let rows = Tensor(uninitialized: [1, dim, maxRows, width])
        // Band buffers from the tensor-buffer cache: the next block's call reuses them without page faults.
        let buffers = (0..<4).map { _ in Tensor(uninitialized: [c2 * bandPlane]) }
        let projected = buffers[0].pointer, first = buffers[1].pointer, second = buffers[2].pointer
        let mixed = buffers[3].pointer
        defer { withExtendedLifetime(buffers) {} }
        let w3 = dwconv3x3.weight.pointer, w5 = dwconv5x5.weight.pointer
        let b3 = dwconv3x3.bias?.pointer, b5 = dwconv5x5.bias?.pointer
        for image in 0..<batch {
            var r0 = 0
            while r0 < height {
                let r1 = min(height, r0 + rowsPerBand)
                let a = max(0, r0 - halo), e = min(height, r1 + halo), n = e - a, bp = n * width
                // LayerNorm of rows a..<e (the band's channel planes gathered first).
                let band = rows.count == dim * bp ? rows : Tensor(uninitialized: [1, dim, n, width])
                for ch in 0..<dim {
                    (band.pointer + ch * bp).update(from: y.pointer + (image * dim + ch) * plane + a * width, count: bp)
                }
                let normed = band.layerNormChannels(weight: norm.weight, bias: norm.bias, eps: 1e-5)
                // project_in: [c2, n·W] = W_in · LN rows (+ bias).
                if let bias = projectIn.bias?.pointer {
                    for ch in 0..<c2 { (projected + ch * bp).update(repeating: bias[ch], count: bp) }
                }
                BLAS.sgemm(m: c2, n: bp, k: dim, a: projectIn.weight.pointer, b: normed.pointer,
                           beta: projectIn.bias == nil ? 0 : 1, c: projected)
                // first = cat(b3[:hidden], b5[:hidden]), second = cat(b3[hidden:], b5[hidden:]) on the band.
                for (half, buffer) in [(0, first), (1, second)] {
                    let offset = half * hidden
                    ConvolutionKernels.depthwise(
                        input: projected + offset * bp, channels: hidden, height: n, width: width, weight: w3 + offset * 9,
                        bias: b3.map { UnsafePointer($0 + offset) }, kernel: 3, relu: true, output: buffer)
                    ConvolutionKernels.depthwise(
                        input: projected + offset * bp, channels: hidden, height: n, width: width, weight: w5 + offset * 25,
                        bias: b5.map { UnsafePointer($0 + offset) }, kernel: 5, relu: true, output: buffer + hidden * bp)
                }
                ConvolutionKernels.grouped(
                    input: first, groups: hidden, inPerGroup: 2, outPerGroup: 1, height: n, width: width,
                    weight: mixConv3x3.weight.pointer, bias: mixConv3x3.bias?.pointer, kernel: 3, relu: true, output: mixed)
                ConvolutionKernels.grouped(
                    input: second, groups: hidden, inPerGroup: 2, outPerGroup: 1, height: n, width: width,
                    weight: mixConv5x5.weight.pointer, bias: mixConv5x5.bias?.pointer, kernel: 5, relu: true,
                    output: mixed + hidden * bp)
                // project_out of the interior rows r0..<r1 onto the output's rows (plane stride H·W).
                BLAS.sgemm(m: dim, n: (r1 - r0) * width, k: c2, a: projectOut.weight.pointer, lda: c2,
                           b: mixed + (r0 - a) * width, ldb: bp, beta: 1,
                           c: out.pointer + image * dim * plane + r0 * width, ldc: plane)
                r0 = r1
            }
        }
        return out
    }
}
