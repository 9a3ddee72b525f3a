// DRSformer (Chen et al., "Learning A Sparse Transformer Network for Effective Image Deraining", CVPR 2023),
// the same function as cschenxiang/DRSformer `basicsr/models/archs/DRSformer_arch.py`: a Restormer-shaped U-Net
// whose blocks use top-k sparse channel attention (TKSA) and a mixed-scale feed-forward network (MSFN), with the
// optional mixture-of-experts feature compensator (MEFC, the `subnet` class) after the patch embedding
// (`encoder_level0`) and before the output convolution (`refinement`).
//
// Swift properties have Swift names; `stateDictKeys` maps the renamed ones to the PyTorch attribute names, so
// `namedParameters()` equals the official state_dict keys and released checkpoints load unchanged. The building blocks live in DRSformerBlocks.swift (transformer) and
// DRSformerMEFC.swift (compensator).

import Foundation
import SKDNN
import SKDTensor

// MARK: - Configuration

/// The constructor arguments of the official `DRSformer` class, plus the MEFC switch.
///
/// Coding keys are the official argument names (as in the reference files' `config` JSON); missing keys take the
/// official defaults and unknown keys (e.g. `"arch"`) are ignored.
public struct DRSformerConfig: Codable, Equatable, Sendable {
    /// Channels of the input image (`inp_channels`).
    public var inpChannels = 3
    /// Channels of the output image (`out_channels`; must equal `inpChannels`: the input is added back as a
    /// global residual).
    public var outChannels = 3
    /// Feature channels at level 1 (`dim`); levels 2–4 have 2×, 4×, 8×.
    public var dim = 48
    /// Sparse transformer blocks per level (`num_blocks`): encoder/decoder levels 1–3 and the latent level 4.
    public var numBlocks = [4, 6, 6, 8]
    /// Attention heads per level (`heads`; decoder level 1 runs at `2·dim` channels with `heads[0]` heads).
    public var heads = [1, 2, 4, 8]
    /// Hidden width of the MSFN is `Int(dim · ffnExpansionFactor)` (`ffn_expansion_factor`).
    public var ffnExpansionFactor = 2.66
    /// Whether the block convolutions carry biases (`bias`).
    public var bias = false
    /// The LayerNorm variant (`LayerNorm_type`).
    public var layerNormType = LayerNormType.withBias
    /// Whether the MEFC subnets `encoder_level0` and `refinement` exist (`mefc`). The official `DRSformer_arch.py`
    /// has them; the authors' `DRSformer_arch_200L+SPA.py` (Rain200L, SPA-Data) leaves both modules out entirely,
    /// so the patch embedding feeds `encoder_level1` and `decoder_level1` feeds the output convolution.
    public var mefc = true

    /// The official defaults (the full DRSformer with MEFC).
    public init() {}

    /// A configuration with the given arguments; the rest keep the official defaults.
    public init(inpChannels: Int = 3, outChannels: Int = 3, dim: Int = 48, numBlocks: [Int] = [4, 6, 6, 8],
                heads: [Int] = [1, 2, 4, 8], ffnExpansionFactor: Double = 2.66, bias: Bool = false,
                layerNormType: LayerNormType = .withBias, mefc: Bool = true) {
        self.inpChannels = inpChannels
        self.outChannels = outChannels
        self.dim = dim
        self.numBlocks = numBlocks
        self.heads = heads
        self.ffnExpansionFactor = ffnExpansionFactor
        self.bias = bias
        self.layerNormType = layerNormType
        self.mefc = mefc
    }

    enum CodingKeys: String, CodingKey {
        case inpChannels = "inp_channels"
        case outChannels = "out_channels"
        case dim
        case numBlocks = "num_blocks"
        case heads
        case ffnExpansionFactor = "ffn_expansion_factor"
        case bias
        case layerNormType = "LayerNorm_type"
        case mefc
    }

    /// Decodes the official argument names; absent keys keep the defaults, and a `LayerNorm_type` other than
    /// `"WithBias"`/`"BiasFree"` is a decoding error (before anything is built).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DRSformerConfig()
        inpChannels = try c.decodeIfPresent(Int.self, forKey: .inpChannels) ?? d.inpChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        numBlocks = try c.decodeIfPresent([Int].self, forKey: .numBlocks) ?? d.numBlocks
        heads = try c.decodeIfPresent([Int].self, forKey: .heads) ?? d.heads
        ffnExpansionFactor = try c.decodeIfPresent(Double.self, forKey: .ffnExpansionFactor) ?? d.ffnExpansionFactor
        bias = try c.decodeIfPresent(Bool.self, forKey: .bias) ?? d.bias
        layerNormType = try c.decodeIfPresent(LayerNormType.self, forKey: .layerNormType) ?? d.layerNormType
        mefc = try c.decodeIfPresent(Bool.self, forKey: .mefc) ?? d.mefc
    }

    /// The names `preset(_:)` knows.
    public static let presetNames = ["drsformer", "drsformer-s"]

    /// A named configuration.
    ///
    /// - `drsformer`: the official model (dim 48, blocks [4,6,6,8], heads [1,2,4,8], MSFN factor 2.66, no bias,
    ///   WithBias LayerNorm, MEFC on); 33.66 M parameters, 971.9 GMAC at 1×3×512×512.
    /// - `drsformer-s`: a distillation student (dim 32, blocks [2,2,2,4], otherwise as above, no MEFC);
    ///   7.65 M parameters, 155.3 GMAC at 1×3×512×512.
    /// - Returns: `nil` for an unknown name. Names are matched case-insensitively.
    public static func preset(_ name: String) -> DRSformerConfig? {
        switch name.lowercased() {
        case "drsformer": return DRSformerConfig()
        case "drsformer-s": return DRSformerConfig(dim: 32, numBlocks: [2, 2, 2, 4], mefc: false)
        default: return nil
        }
    }
}

// MARK: - The network

/// DRSformer: a four-level encoder–decoder of sparse transformer blocks with optional MEFC subnets.
///
/// Input and output are `[N, inp_channels, H, W]` with H and W multiples of 8 (three pixel-unshuffle levels);
/// the output is the prediction plus the input (global residual).
public final class DRSformer: Module, TappedModel {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["patchEmbed": "patch_embed", "encoderLevel0": "encoder_level0", "encoderLevel1": "encoder_level1",
         "down1To2": "down1_2", "encoderLevel2": "encoder_level2", "down2To3": "down2_3",
         "encoderLevel3": "encoder_level3", "down3To4": "down3_4", "up4To3": "up4_3",
         "reduceChannelsLevel3": "reduce_chan_level3", "decoderLevel3": "decoder_level3", "up3To2": "up3_2",
         "reduceChannelsLevel2": "reduce_chan_level2", "decoderLevel2": "decoder_level2", "up2To1": "up2_1",
         "decoderLevel1": "decoder_level1"]
    }

    /// The configuration the network was built from.
    public let config: DRSformerConfig

    /// 3×3 convolution from the image to `dim` channels.
    public var patchEmbed: RestormerPatchEmbed
    /// MEFC on the embedded image (`dim` channels); `nil` without MEFC.
    public var encoderLevel0: DRSformerSubnet?
    /// `num_blocks[0]` blocks at `dim` channels, full resolution.
    public var encoderLevel1: [DRSformerTransformerBlock]
    /// Level 1 → 2 (`dim` → `2·dim`, half resolution).
    public var down1To2: RestormerDownsample
    /// `num_blocks[1]` blocks at `2·dim` channels.
    public var encoderLevel2: [DRSformerTransformerBlock]
    /// Level 2 → 3.
    public var down2To3: RestormerDownsample
    /// `num_blocks[2]` blocks at `4·dim` channels.
    public var encoderLevel3: [DRSformerTransformerBlock]
    /// Level 3 → 4.
    public var down3To4: RestormerDownsample
    /// `num_blocks[3]` blocks at `8·dim` channels, 1/8 resolution.
    public var latent: [DRSformerTransformerBlock]
    /// Level 4 → 3 (`8·dim` → `4·dim`, double resolution).
    public var up4To3: RestormerUpsample
    /// 1×1 convolution `8·dim → 4·dim` after the skip concatenation.
    public var reduceChannelsLevel3: Conv2d
    /// `num_blocks[2]` blocks at `4·dim` channels.
    public var decoderLevel3: [DRSformerTransformerBlock]
    /// Level 3 → 2.
    public var up3To2: RestormerUpsample
    /// 1×1 convolution `4·dim → 2·dim` after the skip concatenation.
    public var reduceChannelsLevel2: Conv2d
    /// `num_blocks[1]` blocks at `2·dim` channels.
    public var decoderLevel2: [DRSformerTransformerBlock]
    /// Level 2 → 1 (no channel reduction after the skip concatenation).
    public var up2To1: RestormerUpsample
    /// `num_blocks[0]` blocks at `2·dim` channels with `heads[0]` heads.
    public var decoderLevel1: [DRSformerTransformerBlock]
    /// MEFC at `2·dim` channels before the output convolution; `nil` without MEFC.
    public var refinement: DRSformerSubnet?
    /// 3×3 convolution `2·dim → out_channels`.
    public var output: Conv2d

    /// Builds the network from a configuration (e.g. a reference file's `config` JSON or a preset).
    ///
    /// The configuration must be valid: `ModelSpec.validate()` throws a one-line error naming the first bad value;
    /// the preconditions here only guard the invariants the construction itself needs.
    public init(config: DRSformerConfig) {
        precondition(config.numBlocks.count == 4 && config.heads.count == 4,
                     "DRSformer: num_blocks \(config.numBlocks) and heads \(config.heads) need four entries each")
        precondition(config.inpChannels == config.outChannels,
                     "DRSformer: the global residual needs out_channels (\(config.outChannels)) == inp_channels (\(config.inpChannels))")
        self.config = config
        let dim = config.dim, numBlocks = config.numBlocks, heads = config.heads
        func level(_ count: Int, _ channels: Int, _ h: Int) -> [DRSformerTransformerBlock] {
            (0..<count).map { _ in
                DRSformerTransformerBlock(dim: channels, numHeads: h, ffnExpansionFactor: config.ffnExpansionFactor,
                                          bias: config.bias, layerNormType: config.layerNormType)
            }
        }
        // The official patch embedding ignores the `bias` argument (its own default, bias=False, is used).
        patchEmbed = RestormerPatchEmbed(inChannels: config.inpChannels, embedDim: dim)
        encoderLevel0 = config.mefc ? DRSformerSubnet(dim: dim) : nil
        encoderLevel1 = level(numBlocks[0], dim, heads[0])
        down1To2 = RestormerDownsample(dim)
        encoderLevel2 = level(numBlocks[1], dim * 2, heads[1])
        down2To3 = RestormerDownsample(dim * 2)
        encoderLevel3 = level(numBlocks[2], dim * 4, heads[2])
        down3To4 = RestormerDownsample(dim * 4)
        latent = level(numBlocks[3], dim * 8, heads[3])
        up4To3 = RestormerUpsample(dim * 8)
        reduceChannelsLevel3 = Conv2d(dim * 8, dim * 4, kernelSize: 1, bias: config.bias)
        decoderLevel3 = level(numBlocks[2], dim * 4, heads[2])
        up3To2 = RestormerUpsample(dim * 4)
        reduceChannelsLevel2 = Conv2d(dim * 4, dim * 2, kernelSize: 1, bias: config.bias)
        decoderLevel2 = level(numBlocks[1], dim * 2, heads[1])
        up2To1 = RestormerUpsample(dim * 2)
        decoderLevel1 = level(numBlocks[0], dim * 2, heads[0])
        refinement = config.mefc ? DRSformerSubnet(dim: dim * 2) : nil
        output = Conv2d(dim * 2, config.outChannels, kernelSize: 3, padding: 1, bias: config.bias)
        super.init()
    }

    /// `init(config:)`; the label-free form reads like the other models' constructors.
    public convenience init(_ config: DRSformerConfig) { self.init(config: config) }

    /// 8: three pixel-unshuffle levels halve the size three times.
    public var sizeMultiple: Int { 8 }

    /// `patch_embed`, `encoder_level0` (with MEFC), `encoder_level1`…`encoder_level3`, `latent`,
    /// `decoder_level3`…`decoder_level1`, `refinement` (with MEFC): each the output of that official submodule.
    public var tapNames: [String] {
        var names = ["patch_embed"]
        if encoderLevel0 != nil { names.append("encoder_level0") }
        names += ["encoder_level1", "encoder_level2", "encoder_level3", "latent",
                  "decoder_level3", "decoder_level2", "decoder_level1"]
        if refinement != nil { names.append("refinement") }
        return names
    }

    /// Runs the network.
    ///
    /// - Parameters:
    ///   - x: `[N, inp_channels, H, W]`, H and W multiples of 8.
    ///   - taps: receives the outputs named in `tapNames` (NCHW) when given.
    /// - Returns: `[N, out_channels, H, W]`.
    public func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == config.inpChannels,
                     "DRSformer: input must be [N, \(config.inpChannels), H, W], got \(x.shape)")
        precondition(x.shape[2] % 8 == 0 && x.shape[3] % 8 == 0,
                     "DRSformer: H and W must be multiples of 8 (three 2× downsamplings), got \(x.shape)")
        func run(_ blocks: [DRSformerTransformerBlock], _ t: Tensor) -> Tensor {
            blocks.reduce(t) { $1($0) }
        }
        var inpEncLevel1 = patchEmbed(x)
        taps?.record("patch_embed", inpEncLevel1)
        if let encoderLevel0 {
            inpEncLevel1 = encoderLevel0(inpEncLevel1)
            taps?.record("encoder_level0", inpEncLevel1)
        }
        let outEncLevel1 = run(encoderLevel1, inpEncLevel1)
        taps?.record("encoder_level1", outEncLevel1)
        if taps?.isComplete == true { return outEncLevel1 }
        let outEncLevel2 = run(encoderLevel2, down1To2(outEncLevel1))
        taps?.record("encoder_level2", outEncLevel2)
        if taps?.isComplete == true { return outEncLevel2 }
        let outEncLevel3 = run(encoderLevel3, down2To3(outEncLevel2))
        taps?.record("encoder_level3", outEncLevel3)
        if taps?.isComplete == true { return outEncLevel3 }
        let lat = run(latent, down3To4(outEncLevel3))
        taps?.record("latent", lat)
        if taps?.isComplete == true { return lat }

        let inpDecLevel3 = reduceChannelsLevel3(Tensor.concat([up4To3(lat), outEncLevel3], axis: 1))
        let outDecLevel3 = run(decoderLevel3, inpDecLevel3)
        taps?.record("decoder_level3", outDecLevel3)
        let inpDecLevel2 = reduceChannelsLevel2(Tensor.concat([up3To2(outDecLevel3), outEncLevel2], axis: 1))
        let outDecLevel2 = run(decoderLevel2, inpDecLevel2)
        taps?.record("decoder_level2", outDecLevel2)
        let inpDecLevel1 = Tensor.concat([up2To1(outDecLevel2), outEncLevel1], axis: 1)
        var outDecLevel1 = run(decoderLevel1, inpDecLevel1)
        taps?.record("decoder_level1", outDecLevel1)
        if let refinement {
            outDecLevel1 = refinement(outDecLevel1)
            taps?.record("refinement", outDecLevel1)
        }
        return output(outDecLevel1) + x
    }

    /// Multiply–accumulates of one forward pass on a `1×inp_channels×height×width` input.
    ///
    /// Counts what the official statistics count (fvcore-style, measured on the official code): every convolution
    /// (depthwise and grouped included; `Cout·(Cin/groups)·k²·H·W`, biases not counted), the MEFC linear layers, and
    /// in each attention the product `q·kᵀ` once and `attn_i·v` four times (the official code runs four products,
    /// one per top-k mask; SwiftSKD mixes the four masked softmaxes first and runs one product, which is the same
    /// function at a quarter of that cost). Normalisations, softmaxes, pooling and element-wise ops are not counted.
    /// The `drsformer` preset gives 971.92 G at 512×512 and `drsformer-s` 155.30 G, as measured officially.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        precondition(height % 8 == 0 && width % 8 == 0,
                     "DRSformer.multiplyAccumulates: height \(height) and width \(width) must be multiples of 8")
        let h1 = height, w1 = width, h2 = h1 / 2, w2 = w1 / 2, h3 = h2 / 2, w3 = w2 / 2, h4 = h3 / 2, w4 = w3 / 2
        func blocks(_ b: [DRSformerTransformerBlock], _ h: Int, _ w: Int) -> Int {
            b.reduce(0) { $0 + $1.multiplyAccumulates(height: h, width: w) }
        }
        var total = patchEmbed.multiplyAccumulates(height: h1, width: w1)
        total += encoderLevel0?.multiplyAccumulates(height: h1, width: w1) ?? 0
        total += blocks(encoderLevel1, h1, w1)
        total += down1To2.multiplyAccumulates(height: h1, width: w1)
        total += blocks(encoderLevel2, h2, w2)
        total += down2To3.multiplyAccumulates(height: h2, width: w2)
        total += blocks(encoderLevel3, h3, w3)
        total += down3To4.multiplyAccumulates(height: h3, width: w3)
        total += blocks(latent, h4, w4)
        total += up4To3.multiplyAccumulates(height: h4, width: w4)
        total += reduceChannelsLevel3.multiplyAccumulates(height: h3, width: w3)
        total += blocks(decoderLevel3, h3, w3)
        total += up3To2.multiplyAccumulates(height: h3, width: w3)
        total += reduceChannelsLevel2.multiplyAccumulates(height: h2, width: w2)
        total += blocks(decoderLevel2, h2, w2)
        total += up2To1.multiplyAccumulates(height: h2, width: w2)
        total += blocks(decoderLevel1, h1, w1)
        total += refinement?.multiplyAccumulates(height: h1, width: w1) ?? 0
        total += output.multiplyAccumulates(height: h1, width: w1)
        return total
    }
}
