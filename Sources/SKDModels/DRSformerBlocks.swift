// The sparse transformer block of DRSformer: top-k sparse attention (TKSA) and the mixed-scale feed-forward
// network (MSFN). The LayerNorm, patch embedding and resizing modules are Restormer's (the official DRSformer code
// copies them from Restormer unchanged), in Restormer+Blocks.swift.
// Parameter names equal the official state_dict keys (`stateDictKeys` maps the Swift property names).

import Foundation
import SKDNN
import SKDTensor

// MARK: - Top-K Sparse Attention (TKSA)

/// The official `Attention`: Restormer's transposed (channel) attention, made sparse by keeping only the
/// top-k scores of each row at four sparsity levels and mixing the four results with learned weights.
///
/// With C channels per head, the masks keep the `⌊C/2⌋`, `⌊2C/3⌋`, `⌊3C/4⌋` and `⌊4C/5⌋` largest scores of each
/// row; the rest become −∞ before the softmax. As in PyTorch, the masks are not differentiated: gradients reach
/// the scores through the kept entries only. The official code multiplies each masked softmax by `v` and then
/// mixes; the mixing is linear, so this implementation mixes the four C×C softmaxes first and multiplies by `v` once.
public final class DRSformerAttention: Module, UnaryLayer {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["qkvDwconv": "qkv_dwconv", "projectOut": "project_out"]
    }

    /// Heads; C = dim / num_heads channels each.
    public let numHeads: Int
    /// `[num_heads, 1, 1]`, initialised to ones: the per-head scale of the scores.
    public var temperature: Tensor
    /// 1×1 convolution `dim → 3·dim`.
    public var qkv: Conv2d
    /// Depthwise 3×3 convolution on the `3·dim` channels.
    public var qkvDwconv: Conv2d
    /// 1×1 convolution `dim → dim`.
    public var projectOut: Conv2d
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
    ///   - numHeads: attention heads.
    ///   - bias: whether the convolutions carry biases.
    public init(dim: Int, numHeads: Int, bias: Bool) {
        precondition(numHeads > 0 && dim % numHeads == 0,
                     "DRSformerAttention: dim \(dim) is not a multiple of num_heads \(numHeads)")
        precondition(dim / numHeads >= 2,
                     "DRSformerAttention: \(dim / numHeads) channel(s) per head; top-k needs ⌊C/2⌋ ≥ 1 (dim \(dim), heads \(numHeads))")
        self.numHeads = numHeads
        temperature = ParameterInit.ones([numHeads, 1, 1])
        qkv = Conv2d(dim, dim * 3, kernelSize: 1, bias: bias)
        qkvDwconv = Conv2d(dim * 3, dim * 3, kernelSize: 3, padding: 1, groups: dim * 3, bias: bias)
        projectOut = Conv2d(dim, dim, kernelSize: 1, bias: bias)
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
        precondition(x.rank == 4 && x.shape[1] == projectOut.weight.shape[0],
                     "DRSformerAttention: input must be [N, \(projectOut.weight.shape[0]), H, W], got \(x.shape)")
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ch = c / numHeads
        let parts = qkvDwconv(qkv(x)).chunk(3, axis: 1)
        // [N, heads, C, H·W] views of each third: the head split is a plain reshape of NCHW.
        let q = parts[0].reshaped([b, numHeads, ch, h * w]).l2Normalized()
        let k = parts[1].reshaped([b, numHeads, ch, h * w]).l2Normalized()
        let v = parts[2].reshaped([b, numHeads, ch, h * w])

        let scores = Tensor.matmul(q, k, transposeB: true) * temperature   // [N, heads, C, C]
        let weights = [attn1, attn2, attn3, attn4]
        let negativeInfinity = Tensor(-Float.infinity)
        var mixed: Tensor? = nil
        for (kk, weight) in zip(Self.topKSizes(channelsPerHead: ch), weights) {
            let sparse = Tensor.select(scores.topKMask(kk), scores, negativeInfinity).softmax() * weight
            mixed = mixed.map { $0 + sparse } ?? sparse
        }
        let out = Tensor.matmul(mixed!, v).reshaped([b, c, h, w])
        return projectOut(out)
    }

    /// MACs on an `H×W` map, counted as the official code runs: the three convolutions, `q·kᵀ` once and
    /// `attn_i·v` four times (`heads · C² · H·W` each).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let c = projectOut.weight.shape[0], ch = c / numHeads
        let products = 5 * numHeads * ch * ch * height * width
        return qkv.multiplyAccumulates(height: height, width: width)
            + qkvDwconv.multiplyAccumulates(height: height, width: width)
            + projectOut.multiplyAccumulates(height: height, width: width) + products
    }
}

// MARK: - Mixed-Scale Feed-forward Network (MSFN)

/// The official `FeedForward` (MSFN): a 1×1 expansion to 2·hidden channels, parallel depthwise 3×3 and 5×5
/// branches with ReLU, a cross-mix of their halves through grouped 3×3 / 5×5 convolutions (2 input channels per
/// group) with ReLU, and a 1×1 projection back.
public final class DRSformerFeedForward: Module, UnaryLayer {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["projectIn": "project_in", "mixConv3x3": "dwconv3x3_1", "mixConv5x5": "dwconv5x5_1", "mixReLU3": "relu3_1",
         "mixReLU5": "relu5_1", "projectOut": "project_out"]
    }

    /// 1×1 convolution `dim → 2·hidden`.
    public var projectIn: Conv2d
    /// Depthwise 3×3 on the `2·hidden` channels.
    public var dwconv3x3: Conv2d
    /// Depthwise 5×5 on the `2·hidden` channels.
    public var dwconv5x5: Conv2d
    /// ReLU after `dwconv3x3`.
    public var relu3 = ReLU()
    /// ReLU after `dwconv5x5`.
    public var relu5 = ReLU()
    /// Grouped 3×3 `2·hidden → hidden`, 2 input channels per group, on the first halves of both branches.
    public var mixConv3x3: Conv2d
    /// Grouped 5×5 `2·hidden → hidden`, 2 input channels per group, on the second halves of both branches.
    public var mixConv5x5: Conv2d
    /// ReLU after `dwconv3x3_1`.
    public var mixReLU3 = ReLU()
    /// ReLU after `dwconv5x5_1`.
    public var mixReLU5 = ReLU()
    /// 1×1 convolution `2·hidden → dim`.
    public var projectOut: Conv2d

    /// - Parameters:
    ///   - dim: channels in and out.
    ///   - ffnExpansionFactor: hidden = `Int(dim · factor)` (Python's `int()`, computed in double precision).
    ///   - bias: whether the convolutions carry biases.
    public init(dim: Int, ffnExpansionFactor: Double, bias: Bool) {
        let hidden = Int(Double(dim) * ffnExpansionFactor)
        precondition(hidden > 0, "DRSformerFeedForward: hidden width Int(\(dim)·\(ffnExpansionFactor)) is 0")
        projectIn = Conv2d(dim, hidden * 2, kernelSize: 1, bias: bias)
        dwconv3x3 = Conv2d(hidden * 2, hidden * 2, kernelSize: 3, padding: 1, groups: hidden * 2, bias: bias)
        dwconv5x5 = Conv2d(hidden * 2, hidden * 2, kernelSize: 5, padding: 2, groups: hidden * 2, bias: bias)
        mixConv3x3 = Conv2d(hidden * 2, hidden, kernelSize: 3, padding: 1, groups: hidden, bias: bias)
        mixConv5x5 = Conv2d(hidden * 2, hidden, kernelSize: 5, padding: 2, groups: hidden, bias: bias)
        projectOut = Conv2d(hidden * 2, dim, kernelSize: 1, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = projectIn(x)
        let b3 = relu3(dwconv3x3(y)).chunk(2, axis: 1)
        let b5 = relu5(dwconv5x5(y)).chunk(2, axis: 1)
        let x1 = mixReLU3(mixConv3x3(Tensor.concat([b3[0], b5[0]], axis: 1)))
        let x2 = mixReLU5(mixConv5x5(Tensor.concat([b3[1], b5[1]], axis: 1)))
        return projectOut(Tensor.concat([x1, x2], axis: 1))
    }

    /// MACs of the six convolutions on an `H×W` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        [projectIn, dwconv3x3, dwconv5x5, mixConv3x3, mixConv5x5, projectOut]
            .reduce(0) { $0 + $1.multiplyAccumulates(height: height, width: width) }
    }
}

// MARK: - Sparse Transformer Block (STB)

/// The official `TransformerBlock`: `x + attn(norm1(x))`, then `x + ffn(norm2(x))`.
public final class DRSformerTransformerBlock: Module, UnaryLayer {
    /// LayerNorm before the attention (Restormer's, as the official code).
    public var norm1: RestormerLayerNorm
    /// Top-k sparse attention.
    public var attn: DRSformerAttention
    /// LayerNorm before the feed-forward network.
    public var norm2: RestormerLayerNorm
    /// Mixed-scale feed-forward network.
    public var ffn: DRSformerFeedForward

    /// The official constructor arguments; see `DRSformerAttention` and `DRSformerFeedForward`.
    public init(dim: Int, numHeads: Int, ffnExpansionFactor: Double, bias: Bool, layerNormType: LayerNormType) {
        norm1 = RestormerLayerNorm(dim, type: layerNormType)
        attn = DRSformerAttention(dim: dim, numHeads: numHeads, bias: bias)
        norm2 = RestormerLayerNorm(dim, type: layerNormType)
        ffn = DRSformerFeedForward(dim: dim, ffnExpansionFactor: ffnExpansionFactor, bias: bias)
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Without gradients the fused path of DRSformer+Inference.swift gives the same values.
        if runsInference(x) { return inferenceForward(x) }
        let y = x + attn(norm1(x))
        return y + ffn(norm2(y))
    }

    /// MACs on an `H×W` map (attention and MSFN; the LayerNorms are not counted).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        attn.multiplyAccumulates(height: height, width: width) + ffn.multiplyAccumulates(height: height, width: width)
    }
}
