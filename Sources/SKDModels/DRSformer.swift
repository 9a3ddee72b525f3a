// DRSformer (Chen et al., "Learning A Sparse Transformer Network for Effective Image Deraining", CVPR 2023),
// the same function as cschenxiang/DRSformer `basicsr/models/archs/DRSformer_arch.py`: a Restormer-shaped U-Net
// whose blocks use top-k sparse channel attention (TKSA) and a mixed-scale feed-forward network (MSFN), with the
// optional mixture-of-experts feature compensator (MEFC, the `subnet` class) after the patch embedding
// (`encoder_level0`) and before the output convolution (`refinement`).
//
// Swift property names are the PyTorch attribute names, so `namedParameters()` equals the official state_dict keys
// and released checkpoints load unchanged. The building blocks live in DRSformerBlocks.swift (transformer) and
// DRSformerMEFC.swift (compensator).

import Foundation
import SKDNN
import SKDTensor

// MARK: - Configuration

/// The constructor arguments of the official `DRSformer` class, plus the MEFC switch.
///
/// Coding keys are the official argument names (as in the reference files' `config` JSON); missing keys take the
/// official defaults and unknown keys (e.g. `"arch"`) are ignored.
public struct DRSformerConfig: Codable, Equatable {
    /// Channels of the input image.
    public var inp_channels = 3
    /// Channels of the output image (must equal `inp_channels`: the input is added back as a global residual).
    public var out_channels = 3
    /// Feature channels at level 1; levels 2–4 have 2×, 4×, 8×.
    public var dim = 48
    /// Sparse transformer blocks per level: encoder/decoder levels 1–3 and the latent level 4.
    public var num_blocks = [4, 6, 6, 8]
    /// Attention heads per level (decoder level 1 runs at `2·dim` channels with `heads[0]` heads).
    public var heads = [1, 2, 4, 8]
    /// Hidden width of the MSFN is `Int(dim · ffn_expansion_factor)`.
    public var ffn_expansion_factor = 2.66
    /// Whether the block convolutions carry biases.
    public var bias = false
    /// `"WithBias"` (mean-centred LayerNorm with bias) or `"BiasFree"`.
    public var LayerNorm_type = "WithBias"
    /// Whether the MEFC subnets `encoder_level0` and `refinement` exist. The official `DRSformer_arch.py` has them;
    /// the authors' `DRSformer_arch_200L+SPA.py` (Rain200L, SPA-Data) leaves both modules out entirely, so the
    /// patch embedding feeds `encoder_level1` and `decoder_level1` feeds the output convolution.
    public var mefc = true

    /// The official defaults (the full DRSformer with MEFC).
    public init() {}

    /// A configuration with the given arguments; the rest keep the official defaults.
    public init(inp_channels: Int = 3, out_channels: Int = 3, dim: Int = 48, num_blocks: [Int] = [4, 6, 6, 8],
                heads: [Int] = [1, 2, 4, 8], ffn_expansion_factor: Double = 2.66, bias: Bool = false,
                LayerNorm_type: String = "WithBias", mefc: Bool = true) {
        self.inp_channels = inp_channels
        self.out_channels = out_channels
        self.dim = dim
        self.num_blocks = num_blocks
        self.heads = heads
        self.ffn_expansion_factor = ffn_expansion_factor
        self.bias = bias
        self.LayerNorm_type = LayerNorm_type
        self.mefc = mefc
    }

    enum CodingKeys: String, CodingKey {
        case inp_channels, out_channels, dim, num_blocks, heads, ffn_expansion_factor, bias, LayerNorm_type, mefc
    }

    /// Decodes the official argument names; absent keys keep the defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DRSformerConfig()
        inp_channels = try c.decodeIfPresent(Int.self, forKey: .inp_channels) ?? d.inp_channels
        out_channels = try c.decodeIfPresent(Int.self, forKey: .out_channels) ?? d.out_channels
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        num_blocks = try c.decodeIfPresent([Int].self, forKey: .num_blocks) ?? d.num_blocks
        heads = try c.decodeIfPresent([Int].self, forKey: .heads) ?? d.heads
        ffn_expansion_factor = try c.decodeIfPresent(Double.self, forKey: .ffn_expansion_factor) ?? d.ffn_expansion_factor
        bias = try c.decodeIfPresent(Bool.self, forKey: .bias) ?? d.bias
        LayerNorm_type = try c.decodeIfPresent(String.self, forKey: .LayerNorm_type) ?? d.LayerNorm_type
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
    /// - Returns: `nil` for an unknown name.
    public static func preset(_ name: String) -> DRSformerConfig? {
        switch name {
        case "drsformer": return DRSformerConfig()
        case "drsformer-s": return DRSformerConfig(dim: 32, num_blocks: [2, 2, 2, 4], mefc: false)
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
    /// The configuration the network was built from.
    public let config: DRSformerConfig

    /// 3×3 convolution from the image to `dim` channels.
    public var patch_embed: DRSformerOverlapPatchEmbed
    /// MEFC on the embedded image (`dim` channels); `nil` without MEFC.
    public var encoder_level0: DRSformerSubnet?
    /// `num_blocks[0]` blocks at `dim` channels, full resolution.
    public var encoder_level1: [DRSformerTransformerBlock]
    /// Level 1 → 2 (`dim` → `2·dim`, half resolution).
    public var down1_2: DRSformerDownsample
    /// `num_blocks[1]` blocks at `2·dim` channels.
    public var encoder_level2: [DRSformerTransformerBlock]
    /// Level 2 → 3.
    public var down2_3: DRSformerDownsample
    /// `num_blocks[2]` blocks at `4·dim` channels.
    public var encoder_level3: [DRSformerTransformerBlock]
    /// Level 3 → 4.
    public var down3_4: DRSformerDownsample
    /// `num_blocks[3]` blocks at `8·dim` channels, 1/8 resolution.
    public var latent: [DRSformerTransformerBlock]
    /// Level 4 → 3 (`8·dim` → `4·dim`, double resolution).
    public var up4_3: DRSformerUpsample
    /// 1×1 convolution `8·dim → 4·dim` after the skip concatenation.
    public var reduce_chan_level3: Conv2d
    /// `num_blocks[2]` blocks at `4·dim` channels.
    public var decoder_level3: [DRSformerTransformerBlock]
    /// Level 3 → 2.
    public var up3_2: DRSformerUpsample
    /// 1×1 convolution `4·dim → 2·dim` after the skip concatenation.
    public var reduce_chan_level2: Conv2d
    /// `num_blocks[1]` blocks at `2·dim` channels.
    public var decoder_level2: [DRSformerTransformerBlock]
    /// Level 2 → 1 (no channel reduction after the skip concatenation).
    public var up2_1: DRSformerUpsample
    /// `num_blocks[0]` blocks at `2·dim` channels with `heads[0]` heads.
    public var decoder_level1: [DRSformerTransformerBlock]
    /// MEFC at `2·dim` channels before the output convolution; `nil` without MEFC.
    public var refinement: DRSformerSubnet?
    /// 3×3 convolution `2·dim → out_channels`.
    public var output: Conv2d

    /// Builds the network with the official constructor arguments (see `DRSformerConfig` for their meaning).
    public init(inp_channels: Int = 3, out_channels: Int = 3, dim: Int = 48, num_blocks: [Int] = [4, 6, 6, 8],
                heads: [Int] = [1, 2, 4, 8], ffn_expansion_factor: Double = 2.66, bias: Bool = false,
                LayerNorm_type: String = "WithBias", mefc: Bool = true) {
        precondition(num_blocks.count == 4 && heads.count == 4,
                     "DRSformer: num_blocks \(num_blocks) and heads \(heads) need four entries each")
        precondition(LayerNorm_type == "WithBias" || LayerNorm_type == "BiasFree",
                     "DRSformer: LayerNorm_type must be \"WithBias\" or \"BiasFree\", got \"\(LayerNorm_type)\"")
        precondition(inp_channels == out_channels,
                     "DRSformer: the global residual needs out_channels (\(out_channels)) == inp_channels (\(inp_channels))")
        config = DRSformerConfig(inp_channels: inp_channels, out_channels: out_channels, dim: dim, num_blocks: num_blocks,
                                  heads: heads, ffn_expansion_factor: ffn_expansion_factor, bias: bias,
                                  LayerNorm_type: LayerNorm_type, mefc: mefc)
        func level(_ count: Int, _ channels: Int, _ h: Int) -> [DRSformerTransformerBlock] {
            (0..<count).map { _ in
                DRSformerTransformerBlock(dim: channels, num_heads: h, ffn_expansion_factor: ffn_expansion_factor,
                                          bias: bias, LayerNorm_type: LayerNorm_type)
            }
        }
        // The official patch embedding ignores the `bias` argument (its own default, bias=False, is used).
        patch_embed = DRSformerOverlapPatchEmbed(in_c: inp_channels, embed_dim: dim, bias: false)
        encoder_level0 = mefc ? DRSformerSubnet(dim: dim) : nil
        encoder_level1 = level(num_blocks[0], dim, heads[0])
        down1_2 = DRSformerDownsample(n_feat: dim)
        encoder_level2 = level(num_blocks[1], dim * 2, heads[1])
        down2_3 = DRSformerDownsample(n_feat: dim * 2)
        encoder_level3 = level(num_blocks[2], dim * 4, heads[2])
        down3_4 = DRSformerDownsample(n_feat: dim * 4)
        latent = level(num_blocks[3], dim * 8, heads[3])
        up4_3 = DRSformerUpsample(n_feat: dim * 8)
        reduce_chan_level3 = Conv2d(dim * 8, dim * 4, kernelSize: 1, bias: bias)
        decoder_level3 = level(num_blocks[2], dim * 4, heads[2])
        up3_2 = DRSformerUpsample(n_feat: dim * 4)
        reduce_chan_level2 = Conv2d(dim * 4, dim * 2, kernelSize: 1, bias: bias)
        decoder_level2 = level(num_blocks[1], dim * 2, heads[1])
        up2_1 = DRSformerUpsample(n_feat: dim * 2)
        decoder_level1 = level(num_blocks[0], dim * 2, heads[0])
        refinement = mefc ? DRSformerSubnet(dim: dim * 2) : nil
        output = Conv2d(dim * 2, out_channels, kernelSize: 3, padding: 1, bias: bias)
        super.init()
    }

    /// Builds the network from a configuration (e.g. a reference file's `config` JSON or a preset).
    public convenience init(config: DRSformerConfig) {
        self.init(inp_channels: config.inp_channels, out_channels: config.out_channels, dim: config.dim,
                  num_blocks: config.num_blocks, heads: config.heads, ffn_expansion_factor: config.ffn_expansion_factor,
                  bias: config.bias, LayerNorm_type: config.LayerNorm_type, mefc: config.mefc)
    }

    /// 8: three pixel-unshuffle levels halve the size three times.
    public var sizeMultiple: Int { 8 }

    /// `patch_embed`, `encoder_level0` (with MEFC), `encoder_level1`…`encoder_level3`, `latent`,
    /// `decoder_level3`…`decoder_level1`, `refinement` (with MEFC): each the output of that official submodule.
    public var tapNames: [String] {
        var names = ["patch_embed"]
        if encoder_level0 != nil { names.append("encoder_level0") }
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
        precondition(x.rank == 4 && x.shape[1] == config.inp_channels,
                     "DRSformer: input must be [N, \(config.inp_channels), H, W], got \(x.shape)")
        precondition(x.shape[2] % 8 == 0 && x.shape[3] % 8 == 0,
                     "DRSformer: H and W must be multiples of 8 (three 2× downsamplings), got \(x.shape)")
        func run(_ blocks: [DRSformerTransformerBlock], _ t: Tensor) -> Tensor {
            blocks.reduce(t) { $1($0) }
        }
        var inp_enc_level1 = patch_embed(x)
        taps?.record("patch_embed", inp_enc_level1)
        if let encoder_level0 {
            inp_enc_level1 = encoder_level0(inp_enc_level1)
            taps?.record("encoder_level0", inp_enc_level1)
        }
        let out_enc_level1 = run(encoder_level1, inp_enc_level1)
        taps?.record("encoder_level1", out_enc_level1)
        if taps?.isComplete == true { return out_enc_level1 }
        let out_enc_level2 = run(encoder_level2, down1_2(out_enc_level1))
        taps?.record("encoder_level2", out_enc_level2)
        if taps?.isComplete == true { return out_enc_level2 }
        let out_enc_level3 = run(encoder_level3, down2_3(out_enc_level2))
        taps?.record("encoder_level3", out_enc_level3)
        if taps?.isComplete == true { return out_enc_level3 }
        let lat = run(latent, down3_4(out_enc_level3))
        taps?.record("latent", lat)
        if taps?.isComplete == true { return lat }

        let inp_dec_level3 = reduce_chan_level3(Tensor.concat([up4_3(lat), out_enc_level3], axis: 1))
        let out_dec_level3 = run(decoder_level3, inp_dec_level3)
        taps?.record("decoder_level3", out_dec_level3)
        let inp_dec_level2 = reduce_chan_level2(Tensor.concat([up3_2(out_dec_level3), out_enc_level2], axis: 1))
        let out_dec_level2 = run(decoder_level2, inp_dec_level2)
        taps?.record("decoder_level2", out_dec_level2)
        let inp_dec_level1 = Tensor.concat([up2_1(out_dec_level2), out_enc_level1], axis: 1)
        var out_dec_level1 = run(decoder_level1, inp_dec_level1)
        taps?.record("decoder_level1", out_dec_level1)
        if let refinement {
            out_dec_level1 = refinement(out_dec_level1)
            taps?.record("refinement", out_dec_level1)
        }
        return output(out_dec_level1) + x
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
        var total = patch_embed.proj.multiplyAccumulates(height: h1, width: w1)
        total += encoder_level0?.multiplyAccumulates(height: h1, width: w1) ?? 0
        total += blocks(encoder_level1, h1, w1)
        total += down1_2.multiplyAccumulates(height: h1, width: w1)
        total += blocks(encoder_level2, h2, w2)
        total += down2_3.multiplyAccumulates(height: h2, width: w2)
        total += blocks(encoder_level3, h3, w3)
        total += down3_4.multiplyAccumulates(height: h3, width: w3)
        total += blocks(latent, h4, w4)
        total += up4_3.multiplyAccumulates(height: h4, width: w4)
        total += reduce_chan_level3.multiplyAccumulates(height: h3, width: w3)
        total += blocks(decoder_level3, h3, w3)
        total += up3_2.multiplyAccumulates(height: h3, width: w3)
        total += reduce_chan_level2.multiplyAccumulates(height: h2, width: w2)
        total += blocks(decoder_level2, h2, w2)
        total += up2_1.multiplyAccumulates(height: h2, width: w2)
        total += blocks(decoder_level1, h1, w1)
        total += refinement?.multiplyAccumulates(height: h1, width: w1) ?? 0
        total += output.multiplyAccumulates(height: h1, width: w1)
        return total
    }
}
