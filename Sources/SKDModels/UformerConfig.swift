// The constructor arguments of the official `Uformer` class, as a Codable value.

import Foundation

/// The arguments of the official `Uformer(...)` constructor (ZhendongWang6/Uformer, `model.py`).
///
/// The coding keys are the official argument names (`img_size`, `embed_dim`, `win_size`, ...), so the `config`
/// JSON of a reference file decodes directly; missing keys take the official defaults and unknown keys (such as
/// `"arch"`) are ignored.
///
/// `img_size` matters even though any input size is accepted: as in the official code, a stage whose side
/// `img_size / 2^level` is at most `win_size` uses that side as its window and no shift. Weights trained with
/// `train_ps = 128` (the SIDD models) therefore need `imgSize = 128` to be the same function, those trained at
/// 256 (GoPro) `imgSize = 256`.
public struct UformerConfig: Codable, Equatable, Sendable {
    /// The training patch side the per-stage windows are derived from (`img_size`).
    public var imgSize: Int = 256
    /// The number of output channels (`in_chans`).
    public var inChans: Int = 3
    /// The number of input channels (`dd_in`); the global residual is added only when it is 3.
    public var ddIn: Int = 3
    /// The channel width of the first stage (`embed_dim`).
    public var embedDim: Int = 32
    /// Blocks per stage: encoder 0–3, bottleneck, decoder 0–3 (`depths`, 9 entries).
    public var depths: [Int] = [2, 2, 2, 2, 2, 2, 2, 2, 2]
    /// Attention heads per stage (`num_heads`, 9 entries).
    public var numHeads: [Int] = [1, 2, 4, 8, 16, 16, 8, 4, 2]
    /// The attention window side (`win_size`).
    public var winSize: Int = 8
    /// The feed-forward hidden width over the channel width (`mlp_ratio`).
    public var mlpRatio: Double = 4
    /// Whether the q/kv projections have a bias (`qkv_bias`).
    public var qkvBias: Bool = true
    /// The attention scale; `nil` for `head_dim^−0.5` (`qk_scale`).
    public var qkScale: Double? = nil
    /// Dropout after the input projection and the attention/MLP outputs (`drop_rate`); only 0 is supported.
    public var dropRate: Double = 0
    /// Dropout on the attention weights (`attn_drop_rate`); only 0 is supported.
    public var attnDropRate: Double = 0
    /// The stochastic-depth rate of the deepest blocks (`drop_path_rate`); active only in training mode.
    public var dropPathRate: Double = 0.1
    /// The token projection (`token_projection`; only `linear` exists here).
    public var tokenProjection: UformerTokenProjection = .linear
    /// The token feed-forward (`token_mlp`): LeFF or the plain MLP.
    public var tokenMlp: UformerTokenMLP = .leff
    /// Whether every second block of a stage uses shifted windows (`shift_flag`).
    public var shiftFlag: Bool = true
    /// Whether the decoder blocks add a learned `[win², C]` embedding to the window tokens (`modulator`).
    public var modulator: Bool = false
    /// The cross-modulator variant (`cross_modulator`); only `false` is supported.
    public var crossModulator: Bool = false

    enum CodingKeys: String, CodingKey {
        case imgSize = "img_size", inChans = "in_chans", ddIn = "dd_in", embedDim = "embed_dim", depths
        case numHeads = "num_heads", winSize = "win_size", mlpRatio = "mlp_ratio", qkvBias = "qkv_bias"
        case qkScale = "qk_scale", dropRate = "drop_rate", attnDropRate = "attn_drop_rate"
        case dropPathRate = "drop_path_rate", tokenProjection = "token_projection", tokenMlp = "token_mlp"
        case shiftFlag = "shift_flag", modulator, crossModulator = "cross_modulator"
    }

    /// The official defaults.
    public init() {}

    /// A configuration with the official defaults except for the arguments given.
    public init(imgSize: Int = 256, embedDim: Int = 32, depths: [Int] = [2, 2, 2, 2, 2, 2, 2, 2, 2],
                numHeads: [Int] = [1, 2, 4, 8, 16, 16, 8, 4, 2], winSize: Int = 8, tokenMlp: UformerTokenMLP = .leff,
                shiftFlag: Bool = true, modulator: Bool = false, ddIn: Int = 3) {
        self.imgSize = imgSize
        self.embedDim = embedDim
        self.depths = depths
        self.numHeads = numHeads
        self.winSize = winSize
        self.tokenMlp = tokenMlp
        self.shiftFlag = shiftFlag
        self.modulator = modulator
        self.ddIn = ddIn
    }

    /// Decodes the official argument names; absent keys keep the official defaults, unknown keys are ignored, and
    /// a `token_mlp` or `token_projection` outside the official choices is a decoding error.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = UformerConfig()
        d.imgSize = try c.decodeIfPresent(Int.self, forKey: .imgSize) ?? d.imgSize
        d.inChans = try c.decodeIfPresent(Int.self, forKey: .inChans) ?? d.inChans
        d.ddIn = try c.decodeIfPresent(Int.self, forKey: .ddIn) ?? d.ddIn
        d.embedDim = try c.decodeIfPresent(Int.self, forKey: .embedDim) ?? d.embedDim
        d.depths = try c.decodeIfPresent([Int].self, forKey: .depths) ?? d.depths
        d.numHeads = try c.decodeIfPresent([Int].self, forKey: .numHeads) ?? d.numHeads
        d.winSize = try c.decodeIfPresent(Int.self, forKey: .winSize) ?? d.winSize
        d.mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? d.mlpRatio
        d.qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? d.qkvBias
        d.qkScale = try c.decodeIfPresent(Double.self, forKey: .qkScale) ?? d.qkScale
        d.dropRate = try c.decodeIfPresent(Double.self, forKey: .dropRate) ?? d.dropRate
        d.attnDropRate = try c.decodeIfPresent(Double.self, forKey: .attnDropRate) ?? d.attnDropRate
        d.dropPathRate = try c.decodeIfPresent(Double.self, forKey: .dropPathRate) ?? d.dropPathRate
        d.tokenProjection = try c.decodeIfPresent(UformerTokenProjection.self, forKey: .tokenProjection) ?? d.tokenProjection
        d.tokenMlp = try c.decodeIfPresent(UformerTokenMLP.self, forKey: .tokenMlp) ?? d.tokenMlp
        d.shiftFlag = try c.decodeIfPresent(Bool.self, forKey: .shiftFlag) ?? d.shiftFlag
        d.modulator = try c.decodeIfPresent(Bool.self, forKey: .modulator) ?? d.modulator
        d.crossModulator = try c.decodeIfPresent(Bool.self, forKey: .crossModulator) ?? d.crossModulator
        self = d
    }

    /// The names `preset(_:)` knows.
    public static let presetNames = ["uformer-b", "uformer-s"]

    /// A named configuration:
    /// - `"uformer-b"`: the official Uformer-B (embed dim 32, depths [1, 2, 8, 8, 2, 8, 8, 2, 1], window 8,
    ///   modulator) — 50.88 M parameters, 346.3 GMAC at 512×512;
    /// - `"uformer-s"`: the small student (embed dim 16, depths [1, 2, 4, 4, 2, 4, 4, 2, 1], window 8, modulator)
    ///   — 7.86 M parameters, 56.6 GMAC at 512×512.
    ///
    /// Both use the official default heads [1, 2, 4, 8, 16, 16, 8, 4, 2], LeFF, linear token projection,
    /// shifted windows and `img_size` 256. Names are matched case-insensitively; returns `nil` for an unknown name.
    public static func preset(_ name: String) -> UformerConfig? {
        switch name.lowercased() {
        case "uformer-b":
            return UformerConfig(embedDim: 32, depths: [1, 2, 8, 8, 2, 8, 8, 2, 1], winSize: 8, modulator: true)
        case "uformer-s":
            return UformerConfig(embedDim: 16, depths: [1, 2, 4, 4, 2, 4, 4, 2, 1], winSize: 8, modulator: true)
        default:
            return nil
        }
    }
}
