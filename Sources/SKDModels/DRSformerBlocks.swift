// The sparse transformer block of DRSformer and the layers around it: LayerNorm over channels, top-k sparse
// attention (TKSA), the mixed-scale feed-forward network (MSFN), patch embedding and the resizing modules.
// Property names follow the official attribute names so parameter names equal the state_dict keys.

import Foundation
import SKDNN
import SKDTensor

// MARK: - LayerNorm

/// The parameters of the official `WithBias_LayerNorm` / `BiasFree_LayerNorm` (the `body` of `LayerNorm`).
public final class DRSformerLayerNormBody: Module {
    /// `[C]`, initialised to ones.
    public var weight: Tensor
    /// `[C]`, initialised to zeros; `nil` in the BiasFree form.
    public var bias: Tensor?

    /// - Parameters:
    ///   - dim: normalised channels C.
    ///   - withBias: `true` for `WithBias_LayerNorm`, `false` for `BiasFree_LayerNorm`.
    public init(dim: Int, withBias: Bool) {
        weight = ParameterInit.ones([dim])
        bias = withBias ? ParameterInit.zeros([dim]) : nil
        super.init()
    }
}

/// The official `LayerNorm(dim, LayerNorm_type)`: normalises each pixel over its channels (eps 1e-5, biased variance).
public final class DRSformerLayerNorm: Module, UnaryLayer {
    /// The weight (and bias) holder, named as the official `body`.
    public var body: DRSformerLayerNormBody

    /// - Parameters:
    ///   - dim: channels C.
    ///   - LayerNorm_type: `"WithBias"` or `"BiasFree"` (the BiasFree form scales without centring, as the official code).
    public init(dim: Int, LayerNorm_type: String) {
        body = DRSformerLayerNormBody(dim: dim, withBias: LayerNorm_type != "BiasFree")
        super.init()
    }

    /// - Parameter x: `[N, C, H, W]`. - Returns: `[N, C, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNormChannels(weight: body.weight, bias: body.bias, eps: 1e-5)
    }
}

// MARK: - Top-K Sparse Attention (TKSA)

/// The official `Attention`: Restormer's transposed (channel) attention, made sparse by keeping only the
/// top-k scores of each row at four sparsity levels and mixing the four results with learned weights.
///
/// With C channels per head, the masks keep the `⌊C/2⌋`, `⌊2C/3⌋`, `⌊3C/4⌋` and `⌊4C/5⌋` largest scores of each
/// row; the rest become −∞ before the softmax. As in PyTorch, the masks are not differentiated: gradients reach
/// the scores through the kept entries only. The official code multiplies each masked softmax by `v` and then
/// mixes; the mixing is linear, so this implementation mixes the four C×C softmaxes first and multiplies by `v` once.
public final class DRSformerAttention: Module, UnaryLayer {
    /// Heads; C = dim / num_heads channels each.
    public let num_heads: Int
    /// `[num_heads, 1, 1]`, initialised to ones: the per-head scale of the scores.
    public var temperature: Tensor
    /// 1×1 convolution `dim → 3·dim`.
    public var qkv: Conv2d
    /// Depthwise 3×3 convolution on the `3·dim` channels.
    public var qkv_dwconv: Conv2d
    /// 1×1 convolution `dim → dim`.
    public var project_out: Conv2d
    /// `[1]`, initialised to 0.2: the weight of the ⌊C/2⌋ level.
    public var attn1: Tensor
    /// `[1]`, initialised to 0.2: the weight of the ⌊2C/3⌋ level.
    public var attn2: Tensor
    /// `[1]`, initialised to 0.2: the weight of the ⌊3C/4⌋ level.
    public var attn3: Tensor
    /// `[1]`, initialised to 0.2: the weight of the ⌊4C/5⌋ level.
    public var attn4: Tensor

    /// - Parameters:
    ///   - dim: channels; must be a multiple of `num_heads` with at least 2 channels per head (⌊C/2⌋ ≥ 1).
    ///   - num_heads: attention heads.
    ///   - bias: whether the convolutions carry biases.
    public init(dim: Int, num_heads: Int, bias: Bool) {
        precondition(num_heads > 0 && dim % num_heads == 0,
                     "DRSformerAttention: dim \(dim) is not a multiple of num_heads \(num_heads)")
        precondition(dim / num_heads >= 2,
                     "DRSformerAttention: \(dim / num_heads) channel(s) per head; top-k needs ⌊C/2⌋ ≥ 1 (dim \(dim), heads \(num_heads))")
        self.num_heads = num_heads
        temperature = ParameterInit.ones([num_heads, 1, 1])
        qkv = Conv2d(dim, dim * 3, kernelSize: 1, bias: bias)
        qkv_dwconv = Conv2d(dim * 3, dim * 3, kernelSize: 3, padding: 1, groups: dim * 3, bias: bias)
        project_out = Conv2d(dim, dim, kernelSize: 1, bias: bias)
        attn1 = ParameterInit.constant([1], 0.2)
        attn2 = ParameterInit.constant([1], 0.2)
        attn3 = ParameterInit.constant([1], 0.2)
        attn4 = ParameterInit.constant([1], 0.2)
        super.init()
    }

    /// The four top-k sizes for C channels per head: Python's `int(C/2)`, `int(C*2/3)`, `int(C*3/4)`, `int(C*4/5)`.
    ///
    /// Integer division gives the same floors: `C·a/b` in double precision is never rounded across an integer
    /// for channel counts of any practical size.
    public static func topKSizes(channelsPerHead c: Int) -> [Int] {
        [c / 2, c * 2 / 3, c * 3 / 4, c * 4 / 5]
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == project_out.weight.shape[0],
                     "DRSformerAttention: input must be [N, \(project_out.weight.shape[0]), H, W], got \(x.shape)")
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ch = c / num_heads
        let parts = qkv_dwconv(qkv(x)).chunk(3, axis: 1)
        // [N, heads, C, H·W] views of each third: the head split is a plain reshape of NCHW.
        let q = parts[0].reshaped([b, num_heads, ch, h * w]).l2Normalized()
        let k = parts[1].reshaped([b, num_heads, ch, h * w]).l2Normalized()
        let v = parts[2].reshaped([b, num_heads, ch, h * w])

        let scores = Tensor.matmul(q, k, transposeB: true) * temperature   // [N, heads, C, C]
        let weights = [attn1, attn2, attn3, attn4]
        let negativeInfinity = Tensor(-Float.infinity)
        var mixed: Tensor? = nil
        for (kk, weight) in zip(Self.topKSizes(channelsPerHead: ch), weights) {
            let sparse = Tensor.select(scores.topKMask(kk), scores, negativeInfinity).softmax() * weight
            mixed = mixed.map { $0 + sparse } ?? sparse
        }
        let out = Tensor.matmul(mixed!, v).reshaped([b, c, h, w])
        return project_out(out)
    }

    /// MACs on an `H×W` map, counted as the official code runs: the three convolutions, `q·kᵀ` once and
    /// `attn_i·v` four times (`heads · C² · H·W` each).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let c = project_out.weight.shape[0], ch = c / num_heads
        let products = 5 * num_heads * ch * ch * height * width
        return qkv.multiplyAccumulates(height: height, width: width)
            + qkv_dwconv.multiplyAccumulates(height: height, width: width)
            + project_out.multiplyAccumulates(height: height, width: width) + products
    }
}

// MARK: - Mixed-Scale Feed-forward Network (MSFN)

/// The official `FeedForward` (MSFN): a 1×1 expansion to 2·hidden channels, parallel depthwise 3×3 and 5×5
/// branches with ReLU, a cross-mix of their halves through grouped 3×3 / 5×5 convolutions (2 input channels per
/// group) with ReLU, and a 1×1 projection back.
public final class DRSformerFeedForward: Module, UnaryLayer {
    /// 1×1 convolution `dim → 2·hidden`.
    public var project_in: Conv2d
    /// Depthwise 3×3 on the `2·hidden` channels.
    public var dwconv3x3: Conv2d
    /// Depthwise 5×5 on the `2·hidden` channels.
    public var dwconv5x5: Conv2d
    /// ReLU after `dwconv3x3`.
    public var relu3 = ReLU()
    /// ReLU after `dwconv5x5`.
    public var relu5 = ReLU()
    /// Grouped 3×3 `2·hidden → hidden`, 2 input channels per group, on the first halves of both branches.
    public var dwconv3x3_1: Conv2d
    /// Grouped 5×5 `2·hidden → hidden`, 2 input channels per group, on the second halves of both branches.
    public var dwconv5x5_1: Conv2d
    /// ReLU after `dwconv3x3_1`.
    public var relu3_1 = ReLU()
    /// ReLU after `dwconv5x5_1`.
    public var relu5_1 = ReLU()
    /// 1×1 convolution `2·hidden → dim`.
    public var project_out: Conv2d

    /// - Parameters:
    ///   - dim: channels in and out.
    ///   - ffn_expansion_factor: hidden = `Int(dim · factor)` (Python's `int()`, computed in double precision).
    ///   - bias: whether the convolutions carry biases.
    public init(dim: Int, ffn_expansion_factor: Double, bias: Bool) {
        let hidden = Int(Double(dim) * ffn_expansion_factor)
        precondition(hidden > 0, "DRSformerFeedForward: hidden width Int(\(dim)·\(ffn_expansion_factor)) is 0")
        project_in = Conv2d(dim, hidden * 2, kernelSize: 1, bias: bias)
        dwconv3x3 = Conv2d(hidden * 2, hidden * 2, kernelSize: 3, padding: 1, groups: hidden * 2, bias: bias)
        dwconv5x5 = Conv2d(hidden * 2, hidden * 2, kernelSize: 5, padding: 2, groups: hidden * 2, bias: bias)
        dwconv3x3_1 = Conv2d(hidden * 2, hidden, kernelSize: 3, padding: 1, groups: hidden, bias: bias)
        dwconv5x5_1 = Conv2d(hidden * 2, hidden, kernelSize: 5, padding: 2, groups: hidden, bias: bias)
        project_out = Conv2d(hidden * 2, dim, kernelSize: 1, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = project_in(x)
        let b3 = relu3(dwconv3x3(y)).chunk(2, axis: 1)
        let b5 = relu5(dwconv5x5(y)).chunk(2, axis: 1)
        let x1 = relu3_1(dwconv3x3_1(Tensor.concat([b3[0], b5[0]], axis: 1)))
        let x2 = relu5_1(dwconv5x5_1(Tensor.concat([b3[1], b5[1]], axis: 1)))
        return project_out(Tensor.concat([x1, x2], axis: 1))
    }

    /// MACs of the six convolutions on an `H×W` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        [project_in, dwconv3x3, dwconv5x5, dwconv3x3_1, dwconv5x5_1, project_out]
            .reduce(0) { $0 + $1.multiplyAccumulates(height: height, width: width) }
    }
}

// MARK: - Sparse Transformer Block (STB)

/// The official `TransformerBlock`: `x + attn(norm1(x))`, then `x + ffn(norm2(x))`.
public final class DRSformerTransformerBlock: Module, UnaryLayer {
    /// LayerNorm before the attention.
    public var norm1: DRSformerLayerNorm
    /// Top-k sparse attention.
    public var attn: DRSformerAttention
    /// LayerNorm before the feed-forward network.
    public var norm2: DRSformerLayerNorm
    /// Mixed-scale feed-forward network.
    public var ffn: DRSformerFeedForward

    /// The official constructor arguments; see `DRSformerAttention` and `DRSformerFeedForward`.
    public init(dim: Int, num_heads: Int, ffn_expansion_factor: Double, bias: Bool, LayerNorm_type: String) {
        norm1 = DRSformerLayerNorm(dim: dim, LayerNorm_type: LayerNorm_type)
        attn = DRSformerAttention(dim: dim, num_heads: num_heads, bias: bias)
        norm2 = DRSformerLayerNorm(dim: dim, LayerNorm_type: LayerNorm_type)
        ffn = DRSformerFeedForward(dim: dim, ffn_expansion_factor: ffn_expansion_factor, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = x + attn(norm1(x))
        return y + ffn(norm2(y))
    }

    /// MACs on an `H×W` map (attention and MSFN; the LayerNorms are not counted).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        attn.multiplyAccumulates(height: height, width: width) + ffn.multiplyAccumulates(height: height, width: width)
    }
}

// MARK: - Embedding and resizing

/// The official `OverlapPatchEmbed`: a 3×3 convolution from the image to `embed_dim` channels.
public final class DRSformerOverlapPatchEmbed: Module, UnaryLayer {
    /// 3×3 convolution `in_c → embed_dim`, padding 1.
    public var proj: Conv2d

    /// - Parameters:
    ///   - in_c: image channels.
    ///   - embed_dim: feature channels.
    ///   - bias: whether the convolution has a bias.
    public init(in_c: Int = 3, embed_dim: Int = 48, bias: Bool = false) {
        proj = Conv2d(in_c, embed_dim, kernelSize: 3, padding: 1, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, in_c, H, W]`. - Returns: `[N, embed_dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { proj(x) }
}

/// The official `Downsample`: 3×3 convolution to `n_feat/2` channels, then pixel-unshuffle by 2.
public final class DRSformerDownsample: Module, UnaryLayer {
    /// `[Conv2d(n_feat, n_feat/2, 3), PixelUnshuffle(2)]`.
    public var body: [UnaryLayer]

    /// - Parameter n_feat: input channels (even).
    public init(n_feat: Int) {
        body = [Conv2d(n_feat, n_feat / 2, kernelSize: 3, padding: 1, bias: false), PixelUnshuffle(2)]
        super.init()
    }

    /// - Parameter x: `[N, n_feat, H, W]`. - Returns: `[N, 2·n_feat, H/2, W/2]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(body, to: x) }

    /// MACs on the `H×W` input map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        (body[0] as! Conv2d).multiplyAccumulates(height: height, width: width)
    }
}

/// The official `Upsample`: 3×3 convolution to `2·n_feat` channels, then pixel-shuffle by 2.
public final class DRSformerUpsample: Module, UnaryLayer {
    /// `[Conv2d(n_feat, 2·n_feat, 3), PixelShuffle(2)]`.
    public var body: [UnaryLayer]

    /// - Parameter n_feat: input channels.
    public init(n_feat: Int) {
        body = [Conv2d(n_feat, n_feat * 2, kernelSize: 3, padding: 1, bias: false), PixelShuffle(2)]
        super.init()
    }

    /// - Parameter x: `[N, n_feat, H, W]`. - Returns: `[N, n_feat/2, 2H, 2W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(body, to: x) }

    /// MACs on the `H×W` input map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        (body[0] as! Conv2d).multiplyAccumulates(height: height, width: width)
    }
}
