// Restormer (Zamir et al., CVPR 2022), exactly as swz30/Restormer `basicsr/models/archs/restormer_arch.py`.
//
// Swift properties have Swift names; `stateDictKeys` maps the renamed ones to the PyTorch attribute names, so
// `namedParameters()` equals the official `state_dict` keys and released checkpoints load as they are. The blocks live in Restormer+Blocks.swift, the fused attention and
// gate kernels in Restormer+Kernels.swift.

import Foundation
import SKDNN
import SKDTensor

/// The constructor arguments of the official `Restormer` class, under their official names when coded
/// (`inp_channels`, `num_blocks`, `LayerNorm_type`, ...). Missing keys take the official defaults; keys the class
/// does not have (such as `"arch"` in the reference files) are ignored.
public struct RestormerConfig: Codable, Equatable, Sendable {
    /// Input image channels (`inp_channels`; 6 for the dual-pixel task).
    public var inpChannels = 3
    /// Output image channels (`out_channels`).
    public var outChannels = 3
    /// Channels at level 1 (`dim`); level l has `dim·2^(l−1)`.
    public var dim = 48
    /// Transformer blocks per level 1–4 (`num_blocks`); the decoder reuses the counts of levels 1–3.
    public var numBlocks = [4, 6, 6, 8]
    /// Blocks of the refinement stage (`num_refinement_blocks`).
    public var numRefinementBlocks = 4
    /// Attention heads per level 1–4 (`heads`).
    public var heads = [1, 2, 4, 8]
    /// GDFN hidden width factor (`ffn_expansion_factor`); hidden = `Int(dim · factor)`, truncated as Python's `int`.
    public var ffnExpansionFactor = 2.66
    /// Whether the convolutions inside blocks, `reduce_chan_*` and `output` have a bias (`bias`).
    public var bias = false
    /// The LayerNorm variant (`LayerNorm_type`).
    public var layerNormType = LayerNormType.withBias
    /// Adds the `skip_conv` from the patch embedding to the decoder output, and drops the global residual
    /// (`dual_pixel_task`, used with `inp_channels = 6` for dual-pixel defocus deblurring).
    public var dualPixelTask = false

    enum CodingKeys: String, CodingKey {
        case inpChannels = "inp_channels"
        case outChannels = "out_channels"
        case dim
        case numBlocks = "num_blocks"
        case numRefinementBlocks = "num_refinement_blocks"
        case heads
        case ffnExpansionFactor = "ffn_expansion_factor"
        case bias
        case layerNormType = "LayerNorm_type"
        case dualPixelTask = "dual_pixel_task"
    }

    /// The official defaults (the published Restormer).
    public init() {}

    /// Decodes the official argument names; absent keys keep the official defaults, unknown keys are ignored.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RestormerConfig()
        inpChannels = try c.decodeIfPresent(Int.self, forKey: .inpChannels) ?? d.inpChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        numBlocks = try c.decodeIfPresent([Int].self, forKey: .numBlocks) ?? d.numBlocks
        numRefinementBlocks = try c.decodeIfPresent(Int.self, forKey: .numRefinementBlocks) ?? d.numRefinementBlocks
        heads = try c.decodeIfPresent([Int].self, forKey: .heads) ?? d.heads
        ffnExpansionFactor = try c.decodeIfPresent(Double.self, forKey: .ffnExpansionFactor) ?? d.ffnExpansionFactor
        bias = try c.decodeIfPresent(Bool.self, forKey: .bias) ?? d.bias
        layerNormType = try c.decodeIfPresent(LayerNormType.self, forKey: .layerNormType) ?? d.layerNormType
        dualPixelTask = try c.decodeIfPresent(Bool.self, forKey: .dualPixelTask) ?? d.dualPixelTask
    }

    /// The names `preset(_:)` knows.
    public static let presetNames = ["restormer", "restormer-s"]

    /// A named configuration: `"restormer"` (the published model: dim 48, blocks [4, 6, 6, 8], 4 refinement
    /// blocks; 26.13 M parameters) or `"restormer-s"` (the distillation student: dim 32, blocks [1, 2, 2, 4],
    /// 1 refinement block; 6.07 M parameters). `nil` for other names.
    public static func preset(_ name: String) -> RestormerConfig? {
        switch name.lowercased() {
        case "restormer":
            return RestormerConfig()
        case "restormer-s":
            var config = RestormerConfig()
            config.dim = 32
            config.numBlocks = [1, 2, 2, 4]
            config.numRefinementBlocks = 1
            return config
        default:
            return nil
        }
    }

    /// The GDFN hidden width for blocks of `channels` channels: Python's `int(channels * ffn_expansion_factor)`.
    public func hiddenFeatures(_ channels: Int) -> Int { Int(Double(channels) * ffnExpansionFactor) }

    /// Checks the invariants the architecture needs, naming the offending value.
    func validate() {
        precondition(numBlocks.count == 4, "Restormer: num_blocks must list 4 levels, got \(numBlocks)")
        precondition(heads.count == 4, "Restormer: heads must list 4 levels, got \(heads)")
        precondition(dim > 0 && dim % 2 == 0, "Restormer: dim must be positive and even (Downsample halves it), got \(dim)")
        precondition(inpChannels > 0 && outChannels > 0,
                     "Restormer: channel counts must be positive (inp \(inpChannels), out \(outChannels))")
        precondition(numBlocks.allSatisfy { $0 >= 0 } && numRefinementBlocks >= 0,
                     "Restormer: block counts must be ≥ 0 (\(numBlocks), refinement \(numRefinementBlocks))")
        let widths = [dim, 2 * dim, 4 * dim, 8 * dim]
        for (level, (w, h)) in zip(widths, heads).enumerated() {
            precondition(h > 0 && w % h == 0, "Restormer: level \(level + 1) has \(w) channels, not divisible by \(h) heads")
        }
        precondition((2 * dim) % heads[0] == 0, "Restormer: decoder level 1 has \(2 * dim) channels, not divisible by \(heads[0]) heads")
        precondition(ffnExpansionFactor > 0, "Restormer: ffn_expansion_factor must be positive, got \(ffnExpansionFactor)")
    }
}

/// Restormer: a 4-level U-shaped encoder–decoder of transformer blocks with transposed (channel) attention
/// (MDTA) and gated-dconv feed-forward (GDFN), as the official `Restormer` class.
///
/// Input `[N, inp_channels, H, W]` with H and W multiples of 8 (three PixelUnshuffle(2) stages); output
/// `[N, out_channels, H, W]` = `output(refinement(...)) + input` (the global residual; with `dual_pixel_task` the
/// residual is replaced by the `skip_conv` of the patch embedding and the input must have 6 channels).
public final class Restormer: Module, TappedModel {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["patchEmbed": "patch_embed", "encoderLevel1": "encoder_level1", "down1To2": "down1_2",
         "encoderLevel2": "encoder_level2", "down2To3": "down2_3", "encoderLevel3": "encoder_level3",
         "down3To4": "down3_4", "up4To3": "up4_3", "reduceChannelsLevel3": "reduce_chan_level3",
         "decoderLevel3": "decoder_level3", "up3To2": "up3_2", "reduceChannelsLevel2": "reduce_chan_level2",
         "decoderLevel2": "decoder_level2", "up2To1": "up2_1", "decoderLevel1": "decoder_level1",
         "skipConv": "skip_conv"]
    }

    /// The constructor arguments.
    public let config: RestormerConfig

    /// 3×3 convolution from the image to `dim` channels (no bias, as the official code).
    public var patchEmbed: RestormerPatchEmbed
    /// Level-1 encoder blocks, `dim` channels.
    public var encoderLevel1: [RestormerTransformerBlock]
    /// Level 1 → 2: `dim` → `2·dim`, half resolution.
    public var down1To2: RestormerDownsample
    /// Level-2 encoder blocks, `2·dim` channels.
    public var encoderLevel2: [RestormerTransformerBlock]
    /// Level 2 → 3.
    public var down2To3: RestormerDownsample
    /// Level-3 encoder blocks, `4·dim` channels.
    public var encoderLevel3: [RestormerTransformerBlock]
    /// Level 3 → 4.
    public var down3To4: RestormerDownsample
    /// Level-4 (bottleneck) blocks, `8·dim` channels.
    public var latent: [RestormerTransformerBlock]
    /// Level 4 → 3: `8·dim` → `4·dim`, double resolution.
    public var up4To3: RestormerUpsample
    /// 1×1 convolution `8·dim` → `4·dim` after concatenating the level-3 skip.
    public var reduceChannelsLevel3: Conv2d
    /// Level-3 decoder blocks.
    public var decoderLevel3: [RestormerTransformerBlock]
    /// Level 3 → 2.
    public var up3To2: RestormerUpsample
    /// 1×1 convolution `4·dim` → `2·dim` after concatenating the level-2 skip.
    public var reduceChannelsLevel2: Conv2d
    /// Level-2 decoder blocks.
    public var decoderLevel2: [RestormerTransformerBlock]
    /// Level 2 → 1 (`2·dim` → `dim`); the level-1 skip is concatenated without reduction.
    public var up2To1: RestormerUpsample
    /// Level-1 decoder blocks at `2·dim` channels.
    public var decoderLevel1: [RestormerTransformerBlock]
    /// Refinement blocks at `2·dim` channels, full resolution.
    public var refinement: [RestormerTransformerBlock]
    /// 1×1 convolution `dim` → `2·dim` from the patch embedding, only with `dual_pixel_task`.
    public var skipConv: Conv2d?
    /// 3×3 convolution `2·dim` → `out_channels`.
    public var output: Conv2d

    /// The taps `forward(_:taps:)` records, in forward order (the official submodule names).
    public let tapNames = ["patch_embed", "encoder_level1", "encoder_level2", "encoder_level3", "latent",
                           "decoder_level3", "decoder_level2", "decoder_level1", "refinement"]

    /// Builds the network with freshly initialised parameters (PyTorch's default initialisation).
    public init(config: RestormerConfig) {
        config.validate()
        self.config = config
        let dim = config.dim, heads = config.heads, blocks = config.numBlocks
        func stage(_ count: Int, _ channels: Int, _ heads: Int) -> [RestormerTransformerBlock] {
            (0..<count).map { _ in
                RestormerTransformerBlock(
                    dim: channels, numHeads: heads, hiddenFeatures: config.hiddenFeatures(channels),
                    bias: config.bias, layerNormType: config.layerNormType)
            }
        }
        patchEmbed = RestormerPatchEmbed(inChannels: config.inpChannels, embedDim: dim)
        encoderLevel1 = stage(blocks[0], dim, heads[0])
        down1To2 = RestormerDownsample(dim)
        encoderLevel2 = stage(blocks[1], dim * 2, heads[1])
        down2To3 = RestormerDownsample(dim * 2)
        encoderLevel3 = stage(blocks[2], dim * 4, heads[2])
        down3To4 = RestormerDownsample(dim * 4)
        latent = stage(blocks[3], dim * 8, heads[3])
        up4To3 = RestormerUpsample(dim * 8)
        reduceChannelsLevel3 = Conv2d(dim * 8, dim * 4, kernelSize: 1, bias: config.bias)
        decoderLevel3 = stage(blocks[2], dim * 4, heads[2])
        up3To2 = RestormerUpsample(dim * 4)
        reduceChannelsLevel2 = Conv2d(dim * 4, dim * 2, kernelSize: 1, bias: config.bias)
        decoderLevel2 = stage(blocks[1], dim * 2, heads[1])
        up2To1 = RestormerUpsample(dim * 2)
        decoderLevel1 = stage(blocks[0], dim * 2, heads[0])
        refinement = stage(config.numRefinementBlocks, dim * 2, heads[0])
        skipConv = config.dualPixelTask ? Conv2d(dim, dim * 2, kernelSize: 1, bias: config.bias) : nil
        output = Conv2d(dim * 2, config.outChannels, kernelSize: 3, padding: 1, bias: config.bias)
        super.init()
    }

    /// `init(config:)`; the label-free form reads like the other models' constructors.
    public convenience init(_ config: RestormerConfig) { self.init(config: config) }

    /// Runs the network, recording the outputs of the official submodules into `taps`.
    ///
    /// - Parameter x: `[N, inp_channels, H, W]`, H and W multiples of 8.
    /// - Returns: `[N, out_channels, H, W]`.
    public func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == config.inpChannels,
                     "Restormer: input must be [N, \(config.inpChannels), H, W], got \(x.shape)")
        precondition(x.shape[2] % 8 == 0 && x.shape[3] % 8 == 0,
                     "Restormer: height and width must be multiples of 8 (three 2× downsamplings), got \(x.shape[2])×\(x.shape[3]); pad the input")
        func run(_ blocks: [RestormerTransformerBlock], _ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
        func tap(_ name: String, _ y: Tensor) -> Tensor { taps?.record(name, y) ?? y }

        // Feature extractors that need only encoder taps stop as soon as they have them (FeatureTaps.isComplete).
        let inpEncLevel1 = tap("patch_embed", patchEmbed(x))
        if taps?.isComplete == true { return inpEncLevel1 }
        let outEncLevel1 = tap("encoder_level1", run(encoderLevel1, inpEncLevel1))
        if taps?.isComplete == true { return outEncLevel1 }
        let outEncLevel2 = tap("encoder_level2", run(encoderLevel2, down1To2(outEncLevel1)))
        if taps?.isComplete == true { return outEncLevel2 }
        let outEncLevel3 = tap("encoder_level3", run(encoderLevel3, down2To3(outEncLevel2)))
        if taps?.isComplete == true { return outEncLevel3 }
        let latentOut = tap("latent", run(latent, down3To4(outEncLevel3)))
        if taps?.isComplete == true { return latentOut }

        let inpDecLevel3 = reduceChannelsLevel3(Tensor.concat([up4To3(latentOut), outEncLevel3], axis: 1))
        let outDecLevel3 = tap("decoder_level3", run(decoderLevel3, inpDecLevel3))
        let inpDecLevel2 = reduceChannelsLevel2(Tensor.concat([up3To2(outDecLevel3), outEncLevel2], axis: 1))
        let outDecLevel2 = tap("decoder_level2", run(decoderLevel2, inpDecLevel2))
        let inpDecLevel1 = Tensor.concat([up2To1(outDecLevel2), outEncLevel1], axis: 1)
        let outDecLevel1 = tap("decoder_level1", run(decoderLevel1, inpDecLevel1))
        let refined = tap("refinement", run(refinement, outDecLevel1))

        if let skipConv {
            return output(refined + skipConv(inpEncLevel1))
        }
        return output(refined) + x
    }

    /// Multiply–accumulates of one forward pass on a `1 × inp_channels × height × width` input: every
    /// convolution (depthwise included), and the two attention products q·kᵀ and attn·v of each MDTA block.
    /// Element-wise work (norms, softmax, GELU, residuals) is not counted, as in the published figures
    /// (restormer: 619.5 G at 512×512, restormer-s: 99.4 G).
    ///
    /// - Parameters:
    ///   - height: the input height, a multiple of 8.
    ///   - width: the input width, a multiple of 8.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        precondition(height % 8 == 0 && width % 8 == 0, "Restormer.multiplyAccumulates: \(height)×\(width) is not a multiple of 8")
        let h1 = height, w1 = width, h2 = h1 / 2, w2 = w1 / 2, h3 = h2 / 2, w3 = w2 / 2, h4 = h3 / 2, w4 = w3 / 2
        func blocks(_ list: [RestormerTransformerBlock], _ h: Int, _ w: Int) -> Int {
            list.reduce(0) { $0 + $1.multiplyAccumulates(height: h, width: w) }
        }
        var macs = patchEmbed.multiplyAccumulates(height: h1, width: w1)
        macs += blocks(encoderLevel1, h1, w1) + down1To2.multiplyAccumulates(height: h1, width: w1)
        macs += blocks(encoderLevel2, h2, w2) + down2To3.multiplyAccumulates(height: h2, width: w2)
        macs += blocks(encoderLevel3, h3, w3) + down3To4.multiplyAccumulates(height: h3, width: w3)
        macs += blocks(latent, h4, w4) + up4To3.multiplyAccumulates(height: h4, width: w4)
        macs += reduceChannelsLevel3.multiplyAccumulates(height: h3, width: w3) + blocks(decoderLevel3, h3, w3)
        macs += up3To2.multiplyAccumulates(height: h3, width: w3)
        macs += reduceChannelsLevel2.multiplyAccumulates(height: h2, width: w2) + blocks(decoderLevel2, h2, w2)
        macs += up2To1.multiplyAccumulates(height: h2, width: w2)
        macs += blocks(decoderLevel1, h1, w1) + blocks(refinement, h1, w1)
        if let skipConv { macs += skipConv.multiplyAccumulates(height: h1, width: w1) }
        macs += output.multiplyAccumulates(height: h1, width: w1)
        return macs
    }
}
