// Restormer's building blocks, named as the official modules so parameter names match the state_dict:
// LayerNorm (`norm1.body.weight`), Attention (`attn.qkv`, `attn.qkv_dwconv`, `attn.temperature`,
// `attn.project_out`), FeedForward (`ffn.project_in`, `ffn.dwconv`, `ffn.project_out`), OverlapPatchEmbed
// (`patch_embed.proj`), Downsample/Upsample (`body.0`). DRSformer uses the same LayerNorm, patch embedding and
// resizing modules (its official code copies them from Restormer), so both families build them from here.

import Foundation
import SKDNN
import SKDTensor

/// The parameters of Restormer's per-pixel channel LayerNorm (the official `WithBias_LayerNorm` /
/// `BiasFree_LayerNorm`, held as `body` by the wrapper).
public final class RestormerLayerNormBody: Module {
    /// `[C]`, initialised to ones.
    public var weight: Tensor
    /// `[C]`, initialised to zeros; `nil` for the BiasFree variant.
    public var bias: Tensor?

    /// - Parameters:
    ///   - dim: the channel count C.
    ///   - withBias: `true` for `WithBias_LayerNorm`.
    public init(_ dim: Int, withBias: Bool) {
        weight = ParameterInit.ones([dim])
        bias = withBias ? ParameterInit.zeros([dim]) : nil
        super.init()
    }
}

/// Restormer's `LayerNorm(dim, LayerNorm_type)`: normalises each pixel over the channels (ε = 1e-5, biased
/// variance). The BiasFree form divides without subtracting the mean.
public final class RestormerLayerNorm: Module, UnaryLayer {
    /// The weight and optional bias.
    public var body: RestormerLayerNormBody

    /// - Parameters:
    ///   - dim: the channel count C.
    ///   - type: WithBias or BiasFree.
    public init(_ dim: Int, type: LayerNormType) {
        body = RestormerLayerNormBody(dim, withBias: type == .withBias)
        super.init()
    }

    /// - Parameter x: `[N, C, H, W]`.
    /// - Returns: `[N, C, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNormChannels(weight: body.weight, bias: body.bias, eps: 1e-5)
    }
}

/// MDTA, the official `Attention`: 1×1 qkv projection, 3×3 depthwise convolution, per-head channel attention
/// `softmax(q̂·k̂ᵀ · temperature)·v` with q̂, k̂ L2-normalised over the pixels, and a 1×1 output projection.
public final class RestormerAttention: Module, UnaryLayer {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["qkvDwconv": "qkv_dwconv", "projectOut": "project_out"]
    }

    /// `[heads, 1, 1]`, initialised to ones.
    public var temperature: Tensor
    /// 1×1, `dim` → `3·dim`.
    public var qkv: Conv2d
    /// 3×3 depthwise over `3·dim` channels.
    public var qkvDwconv: Conv2d
    /// 1×1, `dim` → `dim`.
    public var projectOut: Conv2d
    /// The number of heads.
    public let numHeads: Int

    /// - Parameters:
    ///   - dim: channels; must be divisible by `numHeads`.
    ///   - numHeads: attention heads.
    ///   - bias: whether the three convolutions have a bias.
    public init(dim: Int, numHeads: Int, bias: Bool) {
        precondition(numHeads > 0 && dim % numHeads == 0, "RestormerAttention: \(dim) channels not divisible by \(numHeads) heads")
        self.numHeads = numHeads
        temperature = ParameterInit.ones([numHeads, 1, 1])
        qkv = Conv2d(dim, dim * 3, kernelSize: 1, bias: bias)
        qkvDwconv = Conv2d(dim * 3, dim * 3, kernelSize: 3, padding: 1, groups: dim * 3, bias: bias)
        projectOut = Conv2d(dim, dim, kernelSize: 1, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`.
    /// - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let mixed = qkvDwconv(qkv(x))
        return projectOut(Tensor.mdtaAttention(qkv: mixed, temperature: temperature, heads: numHeads))
    }

    /// Multiply–accumulates on an `H×W` map: the three convolutions plus q·kᵀ and attn·v.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let pixels = height * width
        let dim = projectOut.weight.shape[0], perHead = dim / numHeads
        let convolutions = (qkv.weight.count + qkvDwconv.weight.count + projectOut.weight.count) * pixels
        return convolutions + 2 * numHeads * perHead * perHead * pixels
    }
}

/// GDFN, the official `FeedForward`: 1×1 to `2·hidden`, 3×3 depthwise, `gelu(x₁) · x₂`, 1×1 back to `dim`.
public final class RestormerFeedForward: Module, UnaryLayer {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["projectIn": "project_in", "projectOut": "project_out"]
    }

    /// 1×1, `dim` → `2·hidden`.
    public var projectIn: Conv2d
    /// 3×3 depthwise over `2·hidden` channels.
    public var dwconv: Conv2d
    /// 1×1, `hidden` → `dim`.
    public var projectOut: Conv2d

    /// - Parameters:
    ///   - dim: channels in and out.
    ///   - hiddenFeatures: `int(dim · ffn_expansion_factor)`.
    ///   - bias: whether the convolutions have a bias.
    public init(dim: Int, hiddenFeatures: Int, bias: Bool) {
        precondition(hiddenFeatures > 0, "RestormerFeedForward: hidden width must be positive, got \(hiddenFeatures)")
        projectIn = Conv2d(dim, hiddenFeatures * 2, kernelSize: 1, bias: bias)
        dwconv = Conv2d(hiddenFeatures * 2, hiddenFeatures * 2, kernelSize: 3, padding: 1, groups: hiddenFeatures * 2, bias: bias)
        projectOut = Conv2d(hiddenFeatures, dim, kernelSize: 1, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`.
    /// - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let hidden = projectIn(x)
        let needsGradient = GradMode.isEnabled
            && (hidden.requiresGrad || dwconv.weight.requiresGrad || (dwconv.bias?.requiresGrad ?? false))
        if !needsGradient {
            // Inference: convolve and gate in one pass (same values, no 2·hidden-channel intermediate).
            return projectOut(Tensor.gdfnDepthwiseGate(hidden, weight: dwconv.weight, bias: dwconv.bias))
        }
        return projectOut(dwconv(hidden).gdfnGate())
    }

    /// Multiply–accumulates of the three convolutions on an `H×W` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        (projectIn.weight.count + dwconv.weight.count + projectOut.weight.count) * height * width
    }
}

/// The official `TransformerBlock`: `x + attn(norm1(x))`, then `x + ffn(norm2(x))`.
public final class RestormerTransformerBlock: Module, UnaryLayer {
    /// LayerNorm before the attention.
    public var norm1: RestormerLayerNorm
    /// MDTA.
    public var attn: RestormerAttention
    /// LayerNorm before the feed-forward.
    public var norm2: RestormerLayerNorm
    /// GDFN.
    public var ffn: RestormerFeedForward

    /// - Parameters:
    ///   - dim: channels.
    ///   - numHeads: attention heads; must divide `dim`.
    ///   - hiddenFeatures: the GDFN hidden width, `int(dim · ffn_expansion_factor)`.
    ///   - bias: whether the convolutions have a bias.
    ///   - layerNormType: WithBias or BiasFree.
    public init(dim: Int, numHeads: Int, hiddenFeatures: Int, bias: Bool, layerNormType: LayerNormType) {
        norm1 = RestormerLayerNorm(dim, type: layerNormType)
        attn = RestormerAttention(dim: dim, numHeads: numHeads, bias: bias)
        norm2 = RestormerLayerNorm(dim, type: layerNormType)
        ffn = RestormerFeedForward(dim: dim, hiddenFeatures: hiddenFeatures, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`.
    /// - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Without gradients the fused, banded path of Restormer+Inference.swift gives the same values.
        if runsInference(x) { return inferenceForward(x) }
        let y = x + attn(norm1(x))
        return y + ffn(norm2(y))
    }

    /// Multiply–accumulates on an `H×W` map (convolutions and attention products; the LayerNorms are not counted).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        attn.multiplyAccumulates(height: height, width: width) + ffn.multiplyAccumulates(height: height, width: width)
    }
}

/// The official `OverlapPatchEmbed`: one 3×3 convolution, padding 1, no bias.
public final class RestormerPatchEmbed: Module, UnaryLayer {
    /// 3×3, `inChannels` → `embedDim`, no bias.
    public var proj: Conv2d

    /// - Parameters:
    ///   - inChannels: image channels.
    ///   - embedDim: output channels.
    public init(inChannels: Int, embedDim: Int) {
        proj = Conv2d(inChannels, embedDim, kernelSize: 3, padding: 1, bias: false)
        super.init()
    }

    /// - Parameter x: `[N, inChannels, H, W]`.
    /// - Returns: `[N, embedDim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { proj(x) }

    /// Multiply–accumulates of the convolution on an `H×W` image.
    public func multiplyAccumulates(height: Int, width: Int) -> Int { proj.multiplyAccumulates(height: height, width: width) }
}

/// The official `Downsample`: 3×3 convolution `n` → `n/2` (no bias), then PixelUnshuffle(2) — `n` → `2n`
/// channels at half resolution. `body` = `[Conv2d, PixelUnshuffle]` so the weight is `body.0.weight`.
public final class RestormerDownsample: Module, UnaryLayer {
    /// `[Conv2d, PixelUnshuffle(2)]`.
    public var body: [UnaryLayer]
    /// The convolution of `body[0]`, typed.
    var conv: Conv2d { _conv }
    private let _conv: Conv2d

    /// - Parameter nFeat: input channels; must be even.
    public init(_ nFeat: Int) {
        precondition(nFeat % 2 == 0, "RestormerDownsample: \(nFeat) channels cannot be halved")
        _conv = Conv2d(nFeat, nFeat / 2, kernelSize: 3, padding: 1, bias: false)
        body = [_conv, PixelUnshuffle(2)]
        super.init()
    }

    /// - Parameter x: `[N, n, H, W]`, H and W even.
    /// - Returns: `[N, 2n, H/2, W/2]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(body, to: x) }

    /// Multiply–accumulates of the convolution on the `H×W` input map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int { _conv.multiplyAccumulates(height: height, width: width) }
}

/// The official `Upsample`: 3×3 convolution `n` → `2n` (no bias), then PixelShuffle(2) — `n` → `n/2` channels
/// at double resolution. `body` = `[Conv2d, PixelShuffle]`.
public final class RestormerUpsample: Module, UnaryLayer {
    /// `[Conv2d, PixelShuffle(2)]`.
    public var body: [UnaryLayer]
    /// The convolution of `body[0]`, typed.
    var conv: Conv2d { _conv }
    private let _conv: Conv2d

    /// - Parameter nFeat: input channels; must be even.
    public init(_ nFeat: Int) {
        precondition(nFeat % 2 == 0, "RestormerUpsample: \(nFeat) channels cannot become \(nFeat / 2)")
        _conv = Conv2d(nFeat, nFeat * 2, kernelSize: 3, padding: 1, bias: false)
        body = [_conv, PixelShuffle(2)]
        super.init()
    }

    /// - Parameter x: `[N, n, H, W]`.
    /// - Returns: `[N, n/2, 2H, 2W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(body, to: x) }

    /// Multiply–accumulates of the convolution on the `H×W` input map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int { _conv.multiplyAccumulates(height: height, width: width) }
}
