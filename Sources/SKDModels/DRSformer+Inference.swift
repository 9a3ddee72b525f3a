// The inference path of DRSformer's sparse transformer block, without recording and without the copies of the
// composed ops.
//
// Attention half: `channelAttentionResidual` (Restormer+Inference.swift) — q, k and v are never stored whole:
// the Gram matrices and norms are accumulated band by band, then v is recomputed band by band and multiplied by
// `W_out·blockdiag(A)`; only the top-k mixing of the small score matrices is DRSformer's own.
// Feed-forward half (MSFN): the depthwise 3×3 and 5×5 convolutions write, with their ReLU applied in the kernel,
// straight into the two buffers that the grouped convolutions read (the official `chunk` + `cat` order), and the
// grouped convolutions write the two halves of `project_out`'s input. At 512×512 this removes ten or so
// full-size copies per block.

import Foundation
import SKDNN
import SKDTensor

extension DRSformerTransformerBlock {
    /// The bytes of 1×1-convolution output one row band of the attention input may hold (a tuning knob).
    public static var inferenceBandBytes = 4 << 20

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
                x, norm: (norm1.body.weight, norm1.body.bias), qkv: attn.qkv, dwconv: attn.qkv_dwconv,
                projectOut: attn.project_out, heads: attn.num_heads, bandBytes: Self.inferenceBandBytes
            ) { attn.sparseMixing(scores: $0 * attn.temperature) }
            let mixed = ffn.inferenceHidden(y.layerNormChannels(weight: norm2.body.weight, bias: norm2.body.bias, eps: 1e-5))
            return pointwiseResidual(mixed, ffn.project_out, adding: y)
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
    /// MSFN up to (not including) `project_out`, without recording: `cat(relu(g3(cat(b3₁, b5₁))), relu(g5(cat(b3₂, b5₂))))`
    /// with `b3 = relu(dw3(project_in(x)))`, `b5 = relu(dw5(project_in(x)))` split into halves ₁, ₂.
    ///
    /// - Parameter x: `[N, dim, H, W]` (already normalised).
    /// - Returns: `[N, 2·hidden, H, W]`, the input of `project_out`.
    func inferenceHidden(_ x: Tensor) -> Tensor {
        let projected = project_in(x)
        let (b, c2, h, w) = (projected.shape[0], projected.shape[1], projected.shape[2], projected.shape[3])
        let hidden = c2 / 2, plane = h * w
        precondition(dwconv3x3_1.weight.shape == [hidden, 2, 3, 3] && dwconv5x5_1.weight.shape == [hidden, 2, 5, 5],
                     "DRSformerFeedForward: grouped convolutions \(dwconv3x3_1.weight.shape), \(dwconv5x5_1.weight.shape) for hidden \(hidden)")
        let out = Tensor(uninitialized: [b, c2, h, w])
        // first = cat(b3[:hidden], b5[:hidden]), second = cat(b3[hidden:], b5[hidden:]) for one image.
        let first = Tensor(uninitialized: [c2, h, w]), second = Tensor(uninitialized: [c2, h, w])
        let w3 = dwconv3x3.weight.pointer, w5 = dwconv5x5.weight.pointer
        let b3 = dwconv3x3.bias?.pointer, b5 = dwconv5x5.bias?.pointer
        for image in 0..<b {
            let input = UnsafePointer(projected.pointer + image * c2 * plane)
            for (half, buffer) in [(0, first), (1, second)] {
                let offset = half * hidden
                ConvolutionKernels.depthwise(
                    input: input + offset * plane, channels: hidden, height: h, width: w, weight: w3 + offset * 9,
                    bias: b3.map { UnsafePointer($0 + offset) }, kernel: 3, relu: true, output: buffer.pointer)
                ConvolutionKernels.depthwise(
                    input: input + offset * plane, channels: hidden, height: h, width: w, weight: w5 + offset * 25,
                    bias: b5.map { UnsafePointer($0 + offset) }, kernel: 5, relu: true,
                    output: buffer.pointer + hidden * plane)
            }
            let o = out.pointer + image * c2 * plane
            ConvolutionKernels.grouped(
                input: first.pointer, groups: hidden, inPerGroup: 2, outPerGroup: 1, height: h, width: w,
                weight: dwconv3x3_1.weight.pointer, bias: dwconv3x3_1.bias?.pointer, kernel: 3, relu: true, output: o)
            ConvolutionKernels.grouped(
                input: second.pointer, groups: hidden, inPerGroup: 2, outPerGroup: 1, height: h, width: w,
                weight: dwconv5x5_1.weight.pointer, bias: dwconv5x5_1.bias?.pointer, kernel: 5, relu: true,
                output: o + hidden * plane)
        }
        return out
    }
}
