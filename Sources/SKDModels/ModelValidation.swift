// Architecture validation in one place: every family's constructor arguments are checked — key names, ranges,
// the constraints between fields and an upper bound on the size — before any tensor is made. `ModelSpec(dictionary:)`
// (options files, `--set`, the `config` metadata of weights files and checkpoints) runs these checks, so a value the
// constructors cannot take is a one-line error instead of a trap, and a typo in a key is an error instead of a
// silently different network.

import Foundation
import SKDNN

extension ModelSpec {
    /// The largest network SwiftSKD builds: 1 G parameters (4 GB of weights, 16 GB with gradients and Adam's
    /// moments). The presets have 6–51 M.
    public static let maximumParameters = 1_000_000_000

    /// The argument names each family accepts (besides `arch` and `preset`).
    public static func argumentNames(architecture: String) -> [String]? {
        switch architecture.lowercased() {
        case "restormer":
            return ["inp_channels", "out_channels", "dim", "num_blocks", "num_refinement_blocks", "heads", "ffn_expansion_factor",
                    "bias", "LayerNorm_type", "dual_pixel_task"]
        case "uformer":
            return ["img_size", "in_chans", "dd_in", "embed_dim", "depths", "num_heads", "win_size", "mlp_ratio", "qkv_bias",
                    "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate", "token_projection", "token_mlp", "shift_flag",
                    "modulator", "cross_modulator"]
        case "drsformer":
            return ["inp_channels", "out_channels", "dim", "num_blocks", "heads", "ffn_expansion_factor", "bias", "LayerNorm_type", "mefc"]
        default:
            return nil
        }
    }

    /// Checks every argument and the constraints between them, and the network's size.
    ///
    /// - Throws: `ModelSpecError.invalid` naming the argument and its value (or the estimated size).
    public func validate() throws {
        switch self {
        case .restormer(let c): try ModelValidation.check(c)
        case .uformer(let c): try ModelValidation.check(c)
        case .drsformer(let c): try ModelValidation.check(c)
        }
        let parameters = estimatedParameters
        if parameters > Double(ModelSpec.maximumParameters) {
            throw ModelSpecError.invalid(String(format: "this %@ would have about %@ parameters (%@ of weights, about 4× that to train); the limit is %d M",
                                                architecture, ModelValidation.count(parameters), ModelValidation.bytes(parameters * 4),
                                                ModelSpec.maximumParameters / 1_000_000))
        }
    }

    /// The parameter count computed from the arguments alone (no tensor is made): exact for the transformer
    /// blocks and convolutions, approximate for the small parts (norms, biases, DRSformer's MEFC). Meaningful only
    /// for arguments that pass the range checks.
    public var estimatedParameters: Double {
        switch self {
        case .restormer(let c): return ModelValidation.parameters(c)
        case .uformer(let c): return ModelValidation.parameters(c)
        case .drsformer(let c): return ModelValidation.parameters(c)
        }
    }
}

/// The per-family checks and size estimates behind `ModelSpec.validate()`.
enum ModelValidation {
    /// The largest channel width, block count, head count and image side accepted before the size check (keeps
    /// the arithmetic of the checks themselves far from overflow).
    static let maximumWidth = 1 << 20
    static let maximumBlocks = 10_000
    static let maximumFactor = 1_000.0

    static func fail(_ arch: String, _ why: String) -> ModelSpecError { .invalid("\(arch): \(why)") }

    static func count(_ n: Double) -> String {
        if n >= 1e12 { return String(format: "%.3g T", n / 1e12) }
        if n >= 1e9 { return String(format: "%.3g G", n / 1e9) }
        return String(format: "%.3g M", n / 1e6)
    }

    static func bytes(_ n: Double) -> String {
        if n >= 1e12 { return String(format: "%.3g TB", n / 1e12) }
        if n >= 1e9 { return String(format: "%.3g GB", n / 1e9) }
        return String(format: "%.3g MB", n / 1e6)
    }

    static func range(_ arch: String, _ name: String, _ value: Int, _ bounds: ClosedRange<Int>) throws {
        guard bounds.contains(value) else {
            throw fail(arch, "\(name) must lie in \(bounds.lowerBound)...\(bounds.upperBound), got \(value)")
        }
    }

    static func list(_ arch: String, _ name: String, _ values: [Int], count: Int, _ bounds: ClosedRange<Int>) throws {
        guard values.count == count else { throw fail(arch, "\(name) must list \(count) values, got \(values.count) (\(values))") }
        for v in values where !bounds.contains(v) {
            throw fail(arch, "\(name) values must lie in \(bounds.lowerBound)...\(bounds.upperBound), got \(v) in \(values)")
        }
    }

    static func factor(_ arch: String, _ name: String, _ value: Double, smallestWidth: Int) throws {
        guard value.isFinite, value > 0, value <= maximumFactor else {
            throw fail(arch, "\(name) must be a positive number up to \(Int(maximumFactor)), got \(value)")
        }
        guard Int(Double(smallestWidth) * value) > 0 else {
            throw fail(arch, "\(name) \(value) gives a hidden width of 0 at \(smallestWidth) channels")
        }
    }

    /// Each (width, heads) pair: heads divide the width, with at least `minimumPerHead` channels per head.
    static func heads(_ arch: String, _ name: String, _ pairs: [(level: String, width: Int, heads: Int)], minimumPerHead: Int = 1) throws {
        for p in pairs {
            guard p.width % p.heads == 0, p.width / p.heads >= minimumPerHead else {
                let need = minimumPerHead > 1 ? " with at least \(minimumPerHead) channels per head" : ""
                throw fail(arch, "\(p.level) has \(p.width) channels, not divisible by its \(p.heads) heads (\(name))\(need)")
            }
        }
    }

    static func rgb(_ arch: String, _ input: (String, Int), _ output: (String, Int)) throws {
        for (name, value) in [input, output] where value != 3 {
            throw fail(arch, "\(name) must be 3 (SwiftSKD restores RGB images), got \(value)")
        }
    }

    // MARK: Restormer

    static func check(_ c: RestormerConfig) throws {
        let a = "restormer"
        try rgb(a, ("inp_channels", c.inpChannels), ("out_channels", c.outChannels))
        guard !c.dualPixelTask else { throw fail(a, "dual_pixel_task needs 6-channel dual-pixel input; SwiftSKD restores RGB images") }
        try range(a, "dim", c.dim, 2...maximumWidth)
        guard c.dim % 2 == 0 else { throw fail(a, "dim must be even (each down-sampling halves it before PixelUnshuffle), got \(c.dim)") }
        try list(a, "num_blocks", c.numBlocks, count: 4, 0...maximumBlocks)
        try range(a, "num_refinement_blocks", c.numRefinementBlocks, 0...maximumBlocks)
        try list(a, "heads", c.heads, count: 4, 1...maximumWidth)
        let d = c.dim
        try heads(a, "heads", [("level 1", d, c.heads[0]), ("level 2", 2 * d, c.heads[1]), ("level 3", 4 * d, c.heads[2]),
                               ("level 4", 8 * d, c.heads[3]), ("decoder level 1", 2 * d, c.heads[0])])
        try factor(a, "ffn_expansion_factor", c.ffnExpansionFactor, smallestWidth: d)
    }

    static func parameters(_ c: RestormerConfig) -> Double {
        let d = Double(c.dim), f = c.ffnExpansionFactor
        func block(_ ch: Double, _ h: Int) -> Double {
            let hidden = (ch * f).rounded(.down)
            let norms = 2 * (c.layerNormType == .biasFree ? ch : 2 * ch)
            let attention = Double(h) + 3 * ch * ch + 27 * ch + ch * ch
            let ffn = 2 * hidden * ch + 18 * hidden + hidden * ch
            let biases = c.bias ? 3 * ch + 3 * ch + ch + 2 * hidden + 2 * hidden + ch : 0
            return norms + attention + ffn + biases
        }
        let nb = c.numBlocks.map(Double.init), h = c.heads
        var total = 9 * Double(c.inpChannels) * d
        total += nb[0] * block(d, h[0]) + nb[1] * block(2 * d, h[1]) + nb[2] * block(4 * d, h[2]) + nb[3] * block(8 * d, h[3])
        total += nb[2] * block(4 * d, h[2]) + nb[1] * block(2 * d, h[1]) + nb[0] * block(2 * d, h[0])
        total += Double(c.numRefinementBlocks) * block(2 * d, h[0])
        // Down-samplings (C → C/2), up-samplings (C → 2C), channel reductions and the output convolution.
        total += 9 * (d * d / 2 + 2 * d * d + 8 * d * d) + 9 * (8 * d * 16 * d + 4 * d * 8 * d + 2 * d * 4 * d)
        total += 8 * d * 4 * d + 4 * d * 2 * d + 9 * 2 * d * Double(c.outChannels)
        return total
    }

    // MARK: Uformer

    static func check(_ c: UformerConfig) throws {
        let a = "uformer"
        try rgb(a, ("dd_in", c.ddIn), ("in_chans", c.inChans))
        try range(a, "embed_dim", c.embedDim, 1...maximumWidth)
        try range(a, "img_size", c.imgSize, 16...65_536)
        try range(a, "win_size", c.winSize, 1...c.imgSize)
        try list(a, "depths", c.depths, count: 9, 0...maximumBlocks)
        try list(a, "num_heads", c.numHeads, count: 9, 1...maximumWidth)
        let e = c.embedDim
        let widths = [e, 2 * e, 4 * e, 8 * e, 16 * e, 16 * e, 8 * e, 4 * e, 2 * e]
        let names = ["encoder stage 0", "encoder stage 1", "encoder stage 2", "encoder stage 3", "the bottleneck",
                     "decoder stage 0", "decoder stage 1", "decoder stage 2", "decoder stage 3"]
        try heads(a, "num_heads", (0..<9).map { (names[$0], widths[$0], c.numHeads[$0]) })
        try factor(a, "mlp_ratio", c.mlpRatio, smallestWidth: e)
        guard !c.crossModulator else { throw fail(a, "cross_modulator is not supported") }
        guard c.dropRate == 0, c.attnDropRate == 0 else {
            throw fail(a, "drop_rate \(c.dropRate) and attn_drop_rate \(c.attnDropRate) are not supported (only 0, the official default)")
        }
        guard c.dropPathRate.isFinite, (0..<1).contains(c.dropPathRate) else { throw fail(a, "drop_path_rate must lie in [0, 1), got \(c.dropPathRate)") }
        if let s = c.qkScale, !(s.isFinite && s > 0) { throw fail(a, "qk_scale must be a positive number, got \(s)") }
        // A decoder stage whose side img_size/2^level is below the window shrinks its window, where the modulator
        // (sized by win_size) no longer fits; the official code fails there too.
        if c.modulator {
            for (index, level) in [(5, 3), (6, 2), (7, 1), (8, 0)] where c.depths[index] > 0 && c.imgSize >> level < c.winSize {
                throw fail(a, "with modulator, \(names[index]) runs at side img_size/\(1 << level) = \(c.imgSize >> level), smaller than win_size \(c.winSize)")
            }
        }
    }

    static func parameters(_ c: UformerConfig) -> Double {
        let e = Double(c.embedDim)
        let widths = [e, 2 * e, 4 * e, 8 * e, 16 * e, 16 * e, 8 * e, 4 * e, 2 * e]
        let levels = [0, 1, 2, 3, 4, 3, 2, 1, 0]
        var total = 9 * Double(c.ddIn) * e + e + 9 * 2 * e * Double(c.inChans) + Double(c.inChans)
        for stage in 0..<9 {
            let ch = widths[stage], side = c.imgSize >> levels[stage]
            let window = Double(side <= c.winSize ? side : c.winSize)
            let hidden = (ch * c.mlpRatio).rounded(.down)
            var block = 4 * ch + (2 * window - 1) * (2 * window - 1) * Double(c.numHeads[stage])
            block += 4 * ch * ch + 4 * ch
            block += c.tokenMlp == .leff ? 2 * ch * hidden + 10 * hidden + ch : 2 * ch * hidden + hidden + ch
            if c.modulator && stage >= 5 { block += Double(c.winSize * c.winSize) * ch }
            total += Double(c.depths[stage]) * block
        }
        // Down-samplings (4×4, C → 2C) and up-samplings (2×2 transposed).
        for ch in [e, 2 * e, 4 * e, 8 * e] { total += 16 * ch * 2 * ch + 2 * ch }
        total += 4 * (16 * e * 8 * e + 16 * e * 4 * e + 8 * e * 2 * e + 4 * e * e)
        return total
    }

    // MARK: DRSformer

    static func check(_ c: DRSformerConfig) throws {
        let a = "drsformer"
        try rgb(a, ("inp_channels", c.inpChannels), ("out_channels", c.outChannels))
        try range(a, "dim", c.dim, 2...maximumWidth)
        guard c.dim % 2 == 0 else { throw fail(a, "dim must be even (each down-sampling halves it before PixelUnshuffle), got \(c.dim)") }
        try list(a, "num_blocks", c.numBlocks, count: 4, 0...maximumBlocks)
        try list(a, "heads", c.heads, count: 4, 1...maximumWidth)
        let d = c.dim
        try heads(a, "heads", [("level 1", d, c.heads[0]), ("level 2", 2 * d, c.heads[1]), ("level 3", 4 * d, c.heads[2]),
                               ("level 4", 8 * d, c.heads[3]), ("decoder level 1", 2 * d, c.heads[0])], minimumPerHead: 2)
        try factor(a, "ffn_expansion_factor", c.ffnExpansionFactor, smallestWidth: d)
    }

    static func parameters(_ c: DRSformerConfig) -> Double {
        let d = Double(c.dim), f = c.ffnExpansionFactor
        func block(_ ch: Double, _ h: Int) -> Double {
            let hidden = (ch * f).rounded(.down)
            let norms = 2 * (c.layerNormType == .biasFree ? ch : 2 * ch)
            let attention = Double(h) + 4 + 3 * ch * ch + 27 * ch + ch * ch
            let ffn = 2 * hidden * ch + 2 * hidden * (9 + 25) + hidden * 2 * (9 + 25) + 2 * hidden * ch
            return norms + attention + ffn
        }
        // MEFC: the operation weights' two linear layers and 4 operation layers of 8 primitives and a 1×1 merge.
        func mefc(_ ch: Double) -> Double { ch * 64 + 64 * 32 + 4 * (8 * ch * ch + 6 * ch * ch + 120 * ch) }
        let nb = c.numBlocks.map(Double.init), h = c.heads
        var total = 9 * Double(c.inpChannels) * d
        total += nb[0] * block(d, h[0]) + nb[1] * block(2 * d, h[1]) + nb[2] * block(4 * d, h[2]) + nb[3] * block(8 * d, h[3])
        total += nb[2] * block(4 * d, h[2]) + nb[1] * block(2 * d, h[1]) + nb[0] * block(2 * d, h[0])
        if c.mefc { total += mefc(d) + mefc(2 * d) }
        total += 9 * (d * d / 2 + 2 * d * d + 8 * d * d) + 9 * (8 * d * 16 * d + 4 * d * 8 * d + 2 * d * 4 * d)
        total += 8 * d * 4 * d + 4 * d * 2 * d + 9 * 2 * d * Double(c.outChannels)
        return total
    }
}

/// Multiply-accumulates at any input size: the input is padded to the model's size multiple first, as inference
/// does, so sizes the network cannot take directly are counted at the size that actually runs.
public enum ModelCost {
    /// The largest side `multiplyAccumulates` accepts (keeps the counts far from integer overflow).
    public static let maximumSide = 16_384

    /// MACs of one forward pass on a `1×3×height×width` image, padded to `model.sizeMultiple`.
    ///
    /// - Throws: `ModelSpecError.invalid` when a side is not in `1...maximumSide`.
    public static func multiplyAccumulates(_ model: any TappedModel & ModelStatistics, height: Int, width: Int) throws -> Int {
        for (name, side) in [("height", height), ("width", width)] where !(1...maximumSide).contains(side) {
            throw ModelSpecError.invalid("\(name) \(side) for the GMACs count must lie in 1...\(maximumSide)")
        }
        let m = max(1, model.sizeMultiple)
        func padded(_ n: Int) -> Int { (n + m - 1) / m * m }
        return model.multiplyAccumulates(height: padded(height), width: padded(width))
    }
}

extension ModelCost {
    /// A conservative estimate of the bytes per input pixel that whole-image inference holds at its peak: the
    /// widest full-resolution activations of a block (attention and feed-forward intermediates), the level-1 skip
    /// connection and the image tensors, in float32. Used to decide when an image must be restored in tiles.
    public static func inferenceBytesPerPixel(_ spec: ModelSpec) -> Double {
        let floats: Double
        switch spec {
        case .restormer(let c):
            let w = Double(2 * c.dim), hidden = (w * c.ffnExpansionFactor).rounded(.down)
            floats = 12 * w + 5 * hidden + Double(c.dim) + 9
        case .drsformer(let c):
            let w = Double(2 * c.dim), hidden = (w * c.ffnExpansionFactor).rounded(.down)
            floats = 12 * w + 10 * hidden + (c.mefc ? 40 * w : 0) + Double(c.dim) + 9
        case .uformer(let c):
            let w = Double(2 * c.embedDim), hidden = (w * c.mlpRatio).rounded(.down)
            let window = Double(min(c.winSize, c.imgSize))
            floats = 12 * w + 5 * hidden + 2 * window * window * Double(c.numHeads[8]) + Double(c.embedDim) + 9
        }
        return 4 * floats
    }
}

extension ModelCost {
    /// A rough estimate of the bytes per input pixel one training step holds: every block's activations kept for
    /// the backward pass (and as much again for their gradients), at each level's share of the pixels. Used to
    /// refuse a batch that cannot fit before minutes are spent gathering it.
    public static func trainingBytesPerPixel(_ spec: ModelSpec) -> Double {
        var floats = 0.0
        func levels(_ dim: Double, _ blocks: [(width: Double, level: Int, count: Int)], perBlock: (Double) -> Double) {
            for b in blocks { floats += Double(b.count) * perBlock(b.width) / pow(4, Double(b.level)) }
            floats += 12 * dim
        }
        switch spec {
        case .restormer(let c):
            let d = Double(c.dim), n = c.numBlocks
            levels(d, [(d, 0, n[0]), (2 * d, 1, n[1]), (4 * d, 2, n[2]), (8 * d, 3, n[3]), (4 * d, 2, n[2]), (2 * d, 1, n[1]),
                       (2 * d, 0, n[0]), (2 * d, 0, c.numRefinementBlocks)]) { w in 8 * w + 6 * (w * c.ffnExpansionFactor).rounded(.down) }
        case .drsformer(let c):
            let d = Double(c.dim), n = c.numBlocks
            levels(d, [(d, 0, n[0]), (2 * d, 1, n[1]), (4 * d, 2, n[2]), (8 * d, 3, n[3]), (4 * d, 2, n[2]), (2 * d, 1, n[1]),
                       (2 * d, 0, n[0])]) { w in 8 * w + 10 * (w * c.ffnExpansionFactor).rounded(.down) }
            if c.mefc { floats += 40 * d + 80 * d }
        case .uformer(let c):
            let e = Double(c.embedDim), n = c.depths
            let window = Double(min(c.winSize, c.imgSize))
            let stages: [(width: Double, level: Int, count: Int)] = [(e, 0, n[0]), (2 * e, 1, n[1]), (4 * e, 2, n[2]), (8 * e, 3, n[3]),
                                                                   (16 * e, 4, n[4]), (16 * e, 3, n[5]), (8 * e, 2, n[6]), (4 * e, 1, n[7]), (2 * e, 0, n[8])]
            levels(e, stages) { w in 10 * w + 5 * (w * c.mlpRatio).rounded(.down) + 2 * window * window * 4 }
        }
        return 2 * 4 * floats
    }
}
