// Uformer (Wang et al., CVPR 2022), the same function as the official `model.py` of ZhendongWang6/Uformer with
// `token_projection='linear'`: a U-shaped hierarchy of LeWin transformer blocks (window self-attention with a
// relative-position bias, optionally shifted, plus a locally-enhanced feed-forward) on token maps.
//
// Tokens are `[B, H·W, C]`, row-major over (h, w), as in the official code. Every submodule and parameter is named
// as the PyTorch attribute (directly or through `stateDictKeys`), so `namedParameters()` equals the official
// `state_dict` keys.
//
// Beyond the official code: inputs may be non-square and of any size. They are reflect-padded (bottom/right) to
// the multiple every stage needs (16 for the four down-samplings, times each stage's window), run, and cropped
// back; on sizes that need no padding the function is exactly the official one.

import SKDNN
import SKDTensor

/// A parameter of `shape` drawn from N(0, std²) with `ParameterInit.generator` (timm's `trunc_normal_(std=.02)` with
/// its default bounds ±2 is this distribution to within 1e-30; `nn.Embedding` uses std 1).
func uformerNormalParameter(_ shape: [Int], std: Float) -> Tensor {
    let t = Tensor.randn(shape, std: std, using: &ParameterInit.generator)
    t.requiresGrad = true
    return t
}

// MARK: - Attention

/// The official `LinearProjection`: queries and key/value pairs from the window tokens by two linear layers.
public final class UformerLinearProjection: Module {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["toQ": "to_q", "toKV": "to_kv"]
    }

    /// `to_q`: `Linear(dim, dim)`.
    public var toQ: Linear
    /// `to_kv`: `Linear(dim, 2·dim)`; output features `[0, dim)` are the keys, `[dim, 2·dim)` the values.
    public var toKV: Linear

    /// - Parameters:
    ///   - dim: the token width.
    ///   - bias: whether both layers have a bias (`qkv_bias`).
    public init(dim: Int, bias: Bool = true) {
        toQ = Linear(dim, dim, bias: bias)
        toKV = Linear(dim, 2 * dim, bias: bias)
        super.init()
    }

    /// - Parameter x: `[B, N, dim]` tokens.
    /// - Returns: the queries `[B, N, dim]` and the key/value pairs `[B, N, 2·dim]` (keys first).
    public func callAsFunction(_ x: Tensor) -> (q: Tensor, kv: Tensor) { (toQ(x), toKV(x)) }
}

/// The official `WindowAttention`: multi-head self-attention inside each window, with a learned relative-position
/// bias and the optional shifted-window mask.
public final class UformerWindowAttention: Module {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["relativePositionBiasTable": "relative_position_bias_table"]
    }

    /// `[(2w−1)², heads]`: one bias per relative offset and head.
    public var relativePositionBiasTable: Tensor
    /// The q/kv projections.
    public var qkv: UformerLinearProjection
    /// `proj`: `Linear(dim, dim)` on the merged heads.
    public var proj: Linear

    /// The token width.
    public let dim: Int
    /// The window side `w`.
    public let window: Int
    /// The number of heads.
    public let numHeads: Int
    /// The factor applied to the queries.
    public let scale: Float
    /// `[w²·w²]`: row of the bias table for each (query, key) pair of a window (the official
    /// `relative_position_index`, an integer buffer that is not part of the state dict).
    private let _relativePositionIndex: [Int]

    /// - Parameters:
    ///   - dim: the token width; a multiple of `numHeads`.
    ///   - window: the window side.
    ///   - numHeads: the number of heads.
    ///   - qkvBias: whether the projections have a bias.
    ///   - qkScale: the query scale; `nil` for `(dim / numHeads)^−0.5`.
    public init(dim: Int, window: Int, numHeads: Int, qkvBias: Bool = true, qkScale: Float? = nil) {
        precondition(numHeads > 0 && dim % numHeads == 0, "UformerWindowAttention: dim \(dim) is not a multiple of \(numHeads) heads")
        precondition(window > 0, "UformerWindowAttention: window \(window) must be positive")
        self.dim = dim
        self.window = window
        self.numHeads = numHeads
        self.scale = qkScale ?? 1 / Float(dim / numHeads).squareRoot()
        let side = 2 * window - 1
        relativePositionBiasTable = uformerNormalParameter([side * side, numHeads], std: 0.02)
        qkv = UformerLinearProjection(dim: dim, bias: qkvBias)
        proj = Linear(dim, dim)
        _relativePositionIndex = UformerWindowAttention.relativePositionIndex(window: window)
        super.init()
    }

    /// The official index: for query `(yi, xi)` and key `(yj, xj)`, `(yi − yj + w − 1)·(2w − 1) + (xi − xj + w − 1)`.
    static func relativePositionIndex(window w: Int) -> [Int] {
        let n = w * w
        var index = [Int](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                index[i * n + j] = (i / w - j / w + w - 1) * (2 * w - 1) + (i % w - j % w + w - 1)
            }
        }
        return index
    }

    /// `[heads, N, N]`: the relative-position bias of every (query, key) pair.
    func positionBias() -> Tensor {
        let n = window * window
        return Tensor.gatherRows(relativePositionBiasTable, indices: _relativePositionIndex)
            .reshaped([n, n, numHeads]).permuted([2, 0, 1])
    }

    /// Attention within each window.
    ///
    /// - Parameters:
    ///   - x: `[B·nW, w², dim]` window tokens.
    ///   - mask: the shifted-window mask labels, or `nil`.
    /// - Returns: `[B·nW, w², dim]`.
    func callAsFunction(_ x: Tensor, mask: UformerShiftMask?) -> Tensor {
        let windows = x.shape[0], n = x.shape[1], c = dim, h = numHeads, d = dim / numHeads
        precondition(x.rank == 3 && n == window * window && x.shape[2] == c,
                     "UformerWindowAttention: windows \(x.shape) are not [B·nW, \(window * window), \(c)]")
        // Keys and values from the two halves of `to_kv`, so each comes out contiguous without slicing activations.
        let kvWeight = qkv.toKV.weight, kvBias = qkv.toKV.bias
        // The query scale folded into the (small) projection instead of a pass over the queries.
        let q = Tensor.linear(x, weight: qkv.toQ.weight * scale, bias: qkv.toQ.bias.map { $0 * scale })
        let k = Tensor.linear(x, weight: kvWeight.slice(axis: 0, start: 0, end: c),
                              bias: kvBias?.slice(axis: 0, start: 0, end: c))
        let v = Tensor.linear(x, weight: kvWeight.slice(axis: 0, start: c, end: 2 * c),
                              bias: kvBias?.slice(axis: 0, start: c, end: 2 * c))
        func heads(_ t: Tensor) -> Tensor {
            h == 1 ? t.reshaped([windows, 1, n, d]) : t.reshaped([windows, n, h, d]).permuted([0, 2, 1, 3])
        }
        var attn = Tensor.matmul(heads(q), heads(k), transposeB: true)           // [B·nW, h, N, N]
        attn = Tensor.addingWindowBias(attn, positionBias(), mask: mask).softmax()
        var out = Tensor.matmul(attn, heads(v))                                    // [B·nW, h, N, d]
        out = h == 1 ? out.reshaped([windows, n, c]) : out.permuted([0, 2, 1, 3]).reshaped([windows, n, c])
        return proj(out)
    }
}

// MARK: - Feed-forward

/// The token feed-forward of a LeWin block: LeFF or the plain MLP.
public protocol UformerFeedForward: Module {
    /// Maps `[B, H·W, C]` tokens of an `height × width` map to `[B, H·W, C]`.
    func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor
    /// Multiply-accumulates on the tokens of an `height × width` map.
    func multiplyAccumulates(height: Int, width: Int) -> Int
}

/// The official `LeFF`: linear + GELU, depthwise 3×3 conv + GELU on the token grid, linear.
public final class UformerLeFF: Module, UformerFeedForward {
    /// `linear1`: `[Linear(dim, hidden), GELU]`.
    public var linear1: [UnaryLayer]
    /// `dwconv`: `[Conv2d(hidden, hidden, 3, padding 1, groups hidden), GELU]`.
    public var dwconv: [UnaryLayer]
    /// `linear2`: `[Linear(hidden, dim)]`.
    public var linear2: [UnaryLayer]
    /// The token width and the hidden width.
    public let dim: Int, hiddenDim: Int

    /// - Parameters:
    ///   - dim: the token width.
    ///   - hiddenDim: the hidden width (`int(dim · mlp_ratio)`).
    public init(dim: Int, hiddenDim: Int) {
        self.dim = dim
        self.hiddenDim = hiddenDim
        linear1 = [Linear(dim, hiddenDim), GELU()]
        dwconv = [Conv2d(hiddenDim, hiddenDim, kernelSize: 3, padding: 1, groups: hiddenDim), GELU()]
        linear2 = [Linear(hiddenDim, dim)]
        super.init()
    }

    /// - Parameters:
    ///   - x: `[B, H·W, dim]` tokens of an `height × width` map.
    ///   - height: `H`.
    ///   - width: `W`.
    /// - Returns: `[B, H·W, dim]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == height * width && x.shape[2] == dim,
                     "UformerLeFF: tokens \(x.shape) are not [B, \(height)·\(width), \(dim)]")
        let hidden = applySequence(linear1, to: x)                                 // [B, HW, hidden]
        // `dwconv` = [Conv2d, GELU], run on the token layout (no transposes of the hidden tokens).
        let conv = dwconv[0] as! Conv2d
        let mixed = applySequence(Array(dwconv.dropFirst()), to: Tensor.depthwiseConv3x3Tokens(
            hidden, weight: conv.weight, bias: conv.bias, height: height, width: width))
        return applySequence(linear2, to: mixed)
    }

    /// Multiply-accumulates on the `height × width` tokens (the linear layers and the depthwise 3×3).
    public func multiplyAccumulates(height: Int, width: Int) -> Int { height * width * (2 * dim * hiddenDim + 9 * hiddenDim) }
}

/// The official `Mlp` (`token_mlp='ffn'` or `'mlp'`): linear + GELU + linear.
public final class UformerMlp: Module, UformerFeedForward {
    /// `fc1`: `Linear(dim, hidden)`.
    public var fc1: Linear
    /// `fc2`: `Linear(hidden, dim)`.
    public var fc2: Linear
    /// The token width and the hidden width.
    public let dim: Int, hiddenDim: Int

    /// - Parameters:
    ///   - dim: the token width.
    ///   - hiddenDim: the hidden width.
    public init(dim: Int, hiddenDim: Int) {
        self.dim = dim
        self.hiddenDim = hiddenDim
        fc1 = Linear(dim, hiddenDim)
        fc2 = Linear(hiddenDim, dim)
        super.init()
    }

    /// - Parameters:
    ///   - x: `[B, H·W, dim]` tokens.
    ///   - height: `H` (unused: the MLP acts on each token alone).
    ///   - width: `W` (unused).
    /// - Returns: `[B, H·W, dim]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor { fc2(fc1(x).gelu()) }

    /// Multiply-accumulates on the `height × width` tokens (the linear layers).
    public func multiplyAccumulates(height: Int, width: Int) -> Int { height * width * 2 * dim * hiddenDim }
}

/// The decoder blocks' `modulator` (`nn.Embedding(win², dim)`): a learned offset per window position.
public final class UformerModulator: Module {
    /// `[win², dim]`, initialised N(0, 1) as `nn.Embedding`.
    public var weight: Tensor

    /// - Parameters:
    ///   - positions: `win²`.
    ///   - dim: the token width.
    public init(positions: Int, dim: Int) {
        weight = uformerNormalParameter([positions, dim], std: 1)
        super.init()
    }
}

// MARK: - LeWin block and stage

/// The official `LeWinTransformerBlock` (without the unused cross-modulator and input-mask paths):
/// `x + proj(W-MSA(norm1(x) [+ modulator]))`, then `x + LeFF(norm2(x))`.
public final class UformerLeWinBlock: Module {
    /// `norm1`: LayerNorm over channels.
    public var norm1: LayerNorm
    /// `attn`: window attention.
    public var attn: UformerWindowAttention
    /// `norm2`: LayerNorm over channels.
    public var norm2: LayerNorm
    /// `mlp`: the token feed-forward.
    public var mlp: UformerFeedForward
    /// `modulator` (decoder blocks when enabled), added to the normalised window tokens fed to the attention.
    public var modulator: UformerModulator?

    /// The token width.
    public let dim: Int
    /// The effective window side (the stage side when that is at most the configured window).
    public let window: Int
    /// The effective cyclic shift (0 when the window was reduced to the stage side).
    public let shift: Int
    /// The stochastic-depth probability, applied in training mode.
    public let dropPath: Float
    /// Draws the drop-path decisions; seeded from `ParameterInit.generator` at construction, so seeding that
    /// before building the model makes training runs reproducible.
    private var _dropPathRandom: SKDRandom

    /// Builds a block as the official constructor does for a stage of side `resolution` (derived from `img_size`).
    ///
    /// - Parameters:
    ///   - dim: the token width.
    ///   - resolution: the stage side `img_size / 2^level`; when it is at most `window`, the block uses it as its
    ///     window and no shift (the official rule).
    ///   - numHeads: attention heads.
    ///   - window: the configured window side.
    ///   - shift: the configured shift (`window / 2` on odd blocks with `shift_flag`, else 0).
    ///   - mlpRatio: hidden width over `dim`.
    ///   - qkvBias: whether the q/kv projections have a bias.
    ///   - qkScale: the query scale; `nil` for `head_dim^−0.5`.
    ///   - dropPath: the stochastic-depth probability in training mode.
    ///   - tokenMlp: LeFF or the plain MLP.
    ///   - modulator: whether to add the window-position embedding (sized by the configured window, as officially).
    public init(dim: Int, resolution: Int, numHeads: Int, window: Int, shift: Int, mlpRatio: Double = 4,
                qkvBias: Bool = true, qkScale: Float? = nil, dropPath: Float = 0, tokenMlp: UformerTokenMLP = .leff,
                modulator: Bool = false) {
        var effectiveWindow = window, effectiveShift = shift
        if resolution <= window {
            effectiveShift = 0
            effectiveWindow = resolution
        }
        precondition(effectiveWindow > 0 && effectiveShift >= 0 && effectiveShift < effectiveWindow,
                     "UformerLeWinBlock: shift \(effectiveShift) must be in 0..<window \(effectiveWindow) (stage side \(resolution))")
        precondition(!modulator || effectiveWindow == window,
                     "UformerLeWinBlock: a modulator of \(window)² positions cannot be added to \(effectiveWindow)² windows (stage side \(resolution) < window \(window); the official code fails here too)")
        self.dim = dim
        self.window = effectiveWindow
        self.shift = effectiveShift
        self.dropPath = dropPath
        _dropPathRandom = SKDRandom(seed: ParameterInit.generator.next())
        norm1 = LayerNorm(dim)
        attn = UformerWindowAttention(dim: dim, window: effectiveWindow, numHeads: numHeads, qkvBias: qkvBias, qkScale: qkScale)
        norm2 = LayerNorm(dim)
        let hidden = Int(Double(dim) * mlpRatio)
        switch tokenMlp {
        case .leff: mlp = UformerLeFF(dim: dim, hiddenDim: hidden)
        case .ffn, .mlp: mlp = UformerMlp(dim: dim, hiddenDim: hidden)
        }
        self.modulator = modulator ? UformerModulator(positions: window * window, dim: dim) : nil
        super.init()
    }

    /// - Parameters:
    ///   - x: `[B, H·W, dim]` tokens.
    ///   - height: `H`, a multiple of `window`.
    ///   - width: `W`, a multiple of `window`.
    /// - Returns: `[B, H·W, dim]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == height * width && x.shape[2] == dim,
                     "UformerLeWinBlock: tokens \(x.shape) are not [B, \(height)·\(width), \(dim)]")
        precondition(height % window == 0 && width % window == 0,
                     "UformerLeWinBlock: a \(height)×\(width) map is not a multiple of the window \(window)")
        // Without gradients, the window attention of Uformer+Inference.swift gives the same values.
        if runsInference(x) { return inferenceForward(x, height: height, width: width) }
        let batch = x.shape[0]
        var windows = norm1(x).windowPartitioned(height: height, width: width, window: window, shift: shift)
        if let modulator { windows = windows + modulator.weight }
        let mask = shift > 0 ? UformerShiftMask(height: height, width: width, window: window, shift: shift) : nil
        let attended = attn(windows, mask: mask)
            .windowMerged(batch: batch, height: height, width: width, window: window, shift: shift)
        let y = x + droppedPath(attended)
        return y + droppedPath(mlp(norm2(y), height: height, width: width))
    }

    /// Stochastic depth (timm's `DropPath`): in training mode, zeroes a sample's residual branch with probability
    /// `dropPath` and scales kept ones by `1 / (1 − dropPath)`.
    private func droppedPath(_ branch: Tensor) -> Tensor {
        guard isTraining, dropPath > 0 else { return branch }
        let keep = 1 - dropPath
        let batch = branch.shape[0]
        let scale = Tensor(uninitialized: [batch] + [Int](repeating: 1, count: branch.rank - 1))
        for i in 0..<batch { scale.pointer[i] = _dropPathRandom.uniform() < keep ? 1 / keep : 0 }
        return branch * scale
    }

    /// Multiply-accumulates on an `height × width` map: q/kv/proj projections, q·kᵀ and attn·v, feed-forward.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let tokens = height * width
        return tokens * 4 * dim * dim + 2 * tokens * window * window * dim + mlp.multiplyAccumulates(height: height, width: width)
    }
}

/// The official `BasicUformerLayer`: a stage of LeWin blocks, alternately unshifted and shifted.
public final class UformerBasicLayer: Module {
    /// `blocks`.
    public var blocks: [UformerLeWinBlock]

    /// - Parameters:
    ///   - dim: the token width.
    ///   - resolution: the stage side derived from `img_size`.
    ///   - depth: the number of blocks.
    ///   - numHeads: attention heads.
    ///   - window: the configured window side.
    ///   - mlpRatio: hidden width over `dim`.
    ///   - qkvBias: whether the q/kv projections have a bias.
    ///   - qkScale: the query scale; `nil` for `head_dim^−0.5`.
    ///   - dropPath: one stochastic-depth probability per block.
    ///   - tokenMlp: LeFF or the plain MLP.
    ///   - shiftFlag: whether odd blocks shift by `window / 2`.
    ///   - modulator: whether the blocks add the window-position embedding.
    public init(dim: Int, resolution: Int, depth: Int, numHeads: Int, window: Int, mlpRatio: Double, qkvBias: Bool,
                qkScale: Float?, dropPath: [Float], tokenMlp: UformerTokenMLP, shiftFlag: Bool, modulator: Bool) {
        precondition(dropPath.count == depth, "UformerBasicLayer: \(dropPath.count) drop-path rates for \(depth) blocks")
        blocks = (0..<depth).map { i in
            UformerLeWinBlock(dim: dim, resolution: resolution, numHeads: numHeads, window: window,
                              shift: shiftFlag && i % 2 == 1 ? window / 2 : 0, mlpRatio: mlpRatio, qkvBias: qkvBias,
                              qkScale: qkScale, dropPath: dropPath[i], tokenMlp: tokenMlp, modulator: modulator)
        }
        super.init()
    }

    /// - Parameter x: `[B, H·W, C]` tokens of an `height × width` map. Returns `[B, H·W, C]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        blocks.reduce(x) { $1($0, height: height, width: width) }
    }

    /// The effective window of each block (the stage's side must be a multiple of each).
    var windows: [Int] { blocks.map(\.window) }

    /// Multiply-accumulates of the stage on an `height × width` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        blocks.reduce(0) { $0 + $1.multiplyAccumulates(height: height, width: width) }
    }
}

// MARK: - Resampling and projections

/// Turns `[B, H·W, C]` tokens into a `[B, C, H, W]` map.
private func tokensToMap(_ x: Tensor, height: Int, width: Int) -> Tensor {
    x.permuted([0, 2, 1]).reshaped([x.shape[0], x.shape[2], height, width])
}

/// Turns a `[B, C, H, W]` map into `[B, H·W, C]` tokens.
private func mapToTokens(_ x: Tensor) -> Tensor {
    x.reshaped([x.shape[0], x.shape[1], x.shape[2] * x.shape[3]]).permuted([0, 2, 1])
}

/// The official `Downsample`: a 4×4 stride-2 convolution on the token grid.
public final class UformerDownsample: Module {
    /// `conv`: `[Conv2d(in, out, 4, stride 2, padding 1)]`.
    public var conv: [UnaryLayer]
    let inChannels: Int, outChannels: Int

    /// A resampling layer from `inChannels` to `outChannels` token channels.
    public init(_ inChannels: Int, _ outChannels: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        conv = [Conv2d(inChannels, outChannels, kernelSize: 4, stride: 2, padding: 1)]
        super.init()
    }

    /// - Parameter x: `[B, H·W, in]` tokens. Returns `[B, (H/2)·(W/2), out]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        mapToTokens(applySequence(conv, to: tokensToMap(x, height: height, width: width)))
    }
}

/// The official `Upsample`: a 2×2 stride-2 transposed convolution on the token grid.
public final class UformerUpsample: Module {
    /// `deconv`: `[ConvTranspose2d(in, out, 2, stride 2)]`.
    public var deconv: [UnaryLayer]
    let inChannels: Int, outChannels: Int

    /// A resampling layer from `inChannels` to `outChannels` token channels.
    public init(_ inChannels: Int, _ outChannels: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        deconv = [ConvTranspose2d(inChannels, outChannels, kernelSize: 2, stride: 2)]
        super.init()
    }

    /// - Parameter x: `[B, H·W, in]` tokens. Returns `[B, (2H)·(2W), out]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        mapToTokens(applySequence(deconv, to: tokensToMap(x, height: height, width: width)))
    }
}

/// The official `InputProj`: 3×3 convolution + LeakyReLU(0.01), flattened to tokens.
public final class UformerInputProj: Module {
    /// `proj`: `[Conv2d(in, out, 3, padding 1), LeakyReLU]`.
    public var proj: [UnaryLayer]

    /// A projection from `inChannels` to `outChannels` channels.
    public init(_ inChannels: Int, _ outChannels: Int) {
        proj = [Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1), LeakyReLU()]
        super.init()
    }

    /// - Parameter x: `[B, in, H, W]`. Returns `[B, H·W, out]` tokens.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        mapToTokens(applySequence(proj, to: x))
    }
}

/// The official `OutputProj`: tokens back to a map, 3×3 convolution.
public final class UformerOutputProj: Module {
    /// `proj`: `[Conv2d(in, out, 3, padding 1)]`.
    public var proj: [UnaryLayer]

    /// A projection from `inChannels` to `outChannels` channels.
    public init(_ inChannels: Int, _ outChannels: Int) {
        proj = [Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1)]
        super.init()
    }

    /// - Parameter x: `[B, H·W, in]` tokens. Returns `[B, out, H, W]`.
    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        applySequence(proj, to: tokensToMap(x, height: height, width: width))
    }
}

// MARK: - Uformer

/// Uformer, as the official `Uformer` class with `token_projection='linear'`.
///
/// Input `[N, dd_in, H, W]` of any size (see the file comment on padding), output `[N, in_chans, H, W]`; with
/// `dd_in == 3` the network predicts a residual added to the input. Taps (`tapNames`) are the token outputs
/// `[N, H'·W', C]` of `input_proj`, the encoder stages, the bottleneck `conv` and the decoder stages, at the
/// padded resolution.
public final class Uformer: Module, TappedModel {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["inputProjection": "input_proj", "outputProjection": "output_proj", "encoderLayer0": "encoderlayer_0",
         "downsample0": "dowsample_0", "encoderLayer1": "encoderlayer_1", "downsample1": "dowsample_1",
         "encoderLayer2": "encoderlayer_2", "downsample2": "dowsample_2", "encoderLayer3": "encoderlayer_3",
         "downsample3": "dowsample_3", "upsample0": "upsample_0", "decoderLayer0": "decoderlayer_0",
         "upsample1": "upsample_1", "decoderLayer1": "decoderlayer_1", "upsample2": "upsample_2",
         "decoderLayer2": "decoderlayer_2", "upsample3": "upsample_3", "decoderLayer3": "decoderlayer_3"]
    }

    /// `dd_in → embed_dim` channels, full resolution.
    public var inputProjection: UformerInputProj
    /// `2·embed_dim → in_chans` channels, full resolution.
    public var outputProjection: UformerOutputProj
    /// Encoder stage 0: `embed_dim` channels at full resolution.
    public var encoderLayer0: UformerBasicLayer
    /// `embed_dim → 2·embed_dim`, half resolution (the official attribute name, typo included).
    public var downsample0: UformerDownsample
    /// Encoder stage 1: `2·embed_dim` channels at 1/2 resolution.
    public var encoderLayer1: UformerBasicLayer
    /// `2·embed_dim → 4·embed_dim`, 1/4 resolution.
    public var downsample1: UformerDownsample
    /// Encoder stage 2: `4·embed_dim` channels at 1/4 resolution.
    public var encoderLayer2: UformerBasicLayer
    /// `4·embed_dim → 8·embed_dim`, 1/8 resolution.
    public var downsample2: UformerDownsample
    /// Encoder stage 3: `8·embed_dim` channels at 1/8 resolution.
    public var encoderLayer3: UformerBasicLayer
    /// `8·embed_dim → 16·embed_dim`, 1/16 resolution.
    public var downsample3: UformerDownsample
    /// The bottleneck stage (the official attribute is called `conv`): `16·embed_dim` channels at 1/16 resolution.
    public var conv: UformerBasicLayer
    /// `16·embed_dim → 8·embed_dim`, 1/8 resolution; concatenated with encoder stage 3.
    public var upsample0: UformerUpsample
    /// Decoder stage 0: `16·embed_dim` channels at 1/8 resolution.
    public var decoderLayer0: UformerBasicLayer
    /// `16·embed_dim → 4·embed_dim`, 1/4 resolution; concatenated with encoder stage 2.
    public var upsample1: UformerUpsample
    /// Decoder stage 1: `8·embed_dim` channels at 1/4 resolution.
    public var decoderLayer1: UformerBasicLayer
    /// `8·embed_dim → 2·embed_dim`, 1/2 resolution; concatenated with encoder stage 1.
    public var upsample2: UformerUpsample
    /// Decoder stage 2: `4·embed_dim` channels at 1/2 resolution.
    public var decoderLayer2: UformerBasicLayer
    /// `4·embed_dim → embed_dim`, full resolution; concatenated with encoder stage 0.
    public var upsample3: UformerUpsample
    /// Decoder stage 3: `2·embed_dim` channels at full resolution.
    public var decoderLayer3: UformerBasicLayer

    /// The constructor arguments.
    public let config: UformerConfig
    /// The side multiple every stage needs: the least common multiple of 16 (four down-samplings) and
    /// `2^level · window` of every stage. `forward` reflect-pads other sizes to it itself; `Inference` pads to it
    /// before calling the model, and rounds tiles up to it.
    public let sizeMultiple: Int

    /// The taps, in forward order: token outputs `[N, H'·W', C]` of these submodules.
    public let tapNames = ["input_proj", "encoderlayer_0", "encoderlayer_1", "encoderlayer_2", "encoderlayer_3",
                           "conv", "decoderlayer_0", "decoderlayer_1", "decoderlayer_2", "decoderlayer_3"]

    /// Builds the network as the official constructor does, with the official `_init_weights` initialisation.
    public init(config: UformerConfig) {
        let c = config
        precondition(c.depths.count == 9 && c.numHeads.count == 9,
                     "Uformer: depths \(c.depths) and num_heads \(c.numHeads) need 9 entries each")
        precondition(c.imgSize >= 16, "Uformer: img_size \(c.imgSize) must be at least 16 (four down-samplings)")
        precondition(!c.crossModulator, "Uformer: cross_modulator is not supported")
        precondition(c.dropRate == 0 && c.attnDropRate == 0,
                     "Uformer: drop_rate \(c.dropRate) / attn_drop_rate \(c.attnDropRate) are not supported (only 0, the official default)")
        precondition(c.ddIn != 3 || c.inChans == 3, "Uformer: with dd_in 3 the residual needs in_chans 3, got \(c.inChans)")
        self.config = c
        let e = c.embedDim, w = c.winSize, r = c.imgSize
        let scale = c.qkScale.map { Float($0) }

        // Stochastic depth as the official code: linear over the encoder blocks, mirrored in the decoder.
        let encoderBlocks = c.depths[0..<4].reduce(0, +)
        let encDpr: [Float] = (0..<encoderBlocks).map {
            encoderBlocks == 1 ? 0 : Float(c.dropPathRate * Double($0) / Double(encoderBlocks - 1))
        }
        let decDpr = Array(encDpr.reversed())
        func slice(_ rates: [Float], _ from: Int, _ count: Int) -> [Float] {
            // Only reachable when the decoders have more blocks than the encoders, where the official code raises
            // IndexError; the extra blocks get no drop-path.
            (0..<count).map { from + $0 < rates.count ? rates[from + $0] : 0 }
        }
        func stage(_ level: Int, _ dim: Int, _ index: Int, _ rates: [Float], modulator: Bool = false) -> UformerBasicLayer {
            UformerBasicLayer(dim: dim, resolution: r >> level, depth: c.depths[index], numHeads: c.numHeads[index],
                              window: w, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, qkScale: scale, dropPath: rates,
                              tokenMlp: c.tokenMlp, shiftFlag: c.shiftFlag, modulator: modulator)
        }
        let d = c.depths
        inputProjection = UformerInputProj(c.ddIn, e)
        outputProjection = UformerOutputProj(2 * e, c.inChans)
        encoderLayer0 = stage(0, e, 0, slice(encDpr, 0, d[0]))
        downsample0 = UformerDownsample(e, 2 * e)
        encoderLayer1 = stage(1, 2 * e, 1, slice(encDpr, d[0], d[1]))
        downsample1 = UformerDownsample(2 * e, 4 * e)
        encoderLayer2 = stage(2, 4 * e, 2, slice(encDpr, d[0] + d[1], d[2]))
        downsample2 = UformerDownsample(4 * e, 8 * e)
        encoderLayer3 = stage(3, 8 * e, 3, slice(encDpr, d[0] + d[1] + d[2], d[3]))
        downsample3 = UformerDownsample(8 * e, 16 * e)
        conv = stage(4, 16 * e, 4, [Float](repeating: Float(c.dropPathRate), count: d[4]))
        upsample0 = UformerUpsample(16 * e, 8 * e)
        decoderLayer0 = stage(3, 16 * e, 5, slice(decDpr, 0, d[5]), modulator: c.modulator)
        upsample1 = UformerUpsample(16 * e, 4 * e)
        decoderLayer1 = stage(2, 8 * e, 6, slice(decDpr, d[5], d[6]), modulator: c.modulator)
        upsample2 = UformerUpsample(8 * e, 2 * e)
        decoderLayer2 = stage(1, 4 * e, 7, slice(decDpr, d[5] + d[6], d[7]), modulator: c.modulator)
        upsample3 = UformerUpsample(4 * e, e)
        decoderLayer3 = stage(0, 2 * e, 8, slice(decDpr, d[5] + d[6] + d[7], d[8]), modulator: c.modulator)

        // Each stage's side must be a multiple of its windows; at level l that is 2^l times the window.
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        var multiple = 16
        let stages: [(Int, UformerBasicLayer)] = [
            (0, encoderLayer0), (1, encoderLayer1), (2, encoderLayer2), (3, encoderLayer3), (4, conv),
            (3, decoderLayer0), (2, decoderLayer1), (1, decoderLayer2), (0, decoderLayer3),
        ]
        for (level, layer) in stages {
            for window in layer.windows {
                let m = window << level
                multiple = multiple / gcd(multiple, m) * m
            }
        }
        sizeMultiple = multiple
        super.init()
        initializeOfficially()
    }

    /// The official `_init_weights`: linear weights N(0, 0.02²) (timm's trunc_normal_ with bounds ±2 is a plain
    /// normal at that std), linear biases 0, LayerNorm 1 / 0. Convolutions keep PyTorch's defaults.
    private func initializeOfficially() {
        for (_, module) in namedModules() {
            guard let linear = module as? Linear else { continue }
            linear.weight.assign(Tensor.randn(linear.weight.shape, std: 0.02, using: &ParameterInit.generator))
            if let bias = linear.bias { bias.assign(Tensor(zeros: bias.shape)) }
        }
    }

    /// The side `n` rounded up to `sizeMultiple`.
    public func paddedSide(_ n: Int) -> Int { (n + sizeMultiple - 1) / sizeMultiple * sizeMultiple }

    /// Runs the network, recording the `tapNames` outputs into `taps` when given.
    ///
    /// - Parameter x: `[N, dd_in, H, W]`, any `H, W ≥ 2`.
    /// - Returns: `[N, in_chans, H, W]`.
    public func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == config.ddIn,
                     "Uformer: input \(x.shape) is not [N, \(config.ddIn), H, W]")
        let height = x.shape[2], width = x.shape[3]
        let h = paddedSide(height), w = paddedSide(width)
        let input = (h == height && w == width) ? x : Uformer.reflectPadded(x, bottom: h - height, right: w - width)

        let y = inputProjection(input)
        taps?.record("input_proj", y)
        let conv0 = encoderLayer0(y, height: h, width: w)
        taps?.record("encoderlayer_0", conv0)
        if taps?.isComplete == true { return conv0 }
        let pool0 = downsample0(conv0, height: h, width: w)
        let conv1 = encoderLayer1(pool0, height: h / 2, width: w / 2)
        taps?.record("encoderlayer_1", conv1)
        if taps?.isComplete == true { return conv1 }
        let pool1 = downsample1(conv1, height: h / 2, width: w / 2)
        let conv2 = encoderLayer2(pool1, height: h / 4, width: w / 4)
        taps?.record("encoderlayer_2", conv2)
        if taps?.isComplete == true { return conv2 }
        let pool2 = downsample2(conv2, height: h / 4, width: w / 4)
        let conv3 = encoderLayer3(pool2, height: h / 8, width: w / 8)
        taps?.record("encoderlayer_3", conv3)
        if taps?.isComplete == true { return conv3 }
        let pool3 = downsample3(conv3, height: h / 8, width: w / 8)

        let conv4 = conv(pool3, height: h / 16, width: w / 16)
        taps?.record("conv", conv4)
        if taps?.isComplete == true { return conv4 }

        let up0 = upsample0(conv4, height: h / 16, width: w / 16)
        let deconv0 = decoderLayer0(Tensor.concat([up0, conv3], axis: 2), height: h / 8, width: w / 8)
        taps?.record("decoderlayer_0", deconv0)
        let up1 = upsample1(deconv0, height: h / 8, width: w / 8)
        let deconv1 = decoderLayer1(Tensor.concat([up1, conv2], axis: 2), height: h / 4, width: w / 4)
        taps?.record("decoderlayer_1", deconv1)
        let up2 = upsample2(deconv1, height: h / 4, width: w / 4)
        let deconv2 = decoderLayer2(Tensor.concat([up2, conv1], axis: 2), height: h / 2, width: w / 2)
        taps?.record("decoderlayer_2", deconv2)
        let up3 = upsample3(deconv2, height: h / 2, width: w / 2)
        let deconv3 = decoderLayer3(Tensor.concat([up3, conv0], axis: 2), height: h, width: w)
        taps?.record("decoderlayer_3", deconv3)

        var out = outputProjection(deconv3, height: h, width: w)
        if config.ddIn == 3 { out = input + out }
        return (h == height && w == width) ? out : out.cropped2d(top: 0, left: 0, height: height, width: width)
    }

    /// Reflect-pads the bottom and right of `x` (`[N, C, H, W]`) by any amount: a single reflection reaches at most
    /// `side − 1` pixels, so larger pads reflect the already padded map again.
    static func reflectPadded(_ x: Tensor, bottom: Int, right: Int) -> Tensor {
        precondition(x.shape[2] >= 2 || bottom == 0, "Uformer: cannot reflect-pad a map of height \(x.shape[2])")
        precondition(x.shape[3] >= 2 || right == 0, "Uformer: cannot reflect-pad a map of width \(x.shape[3])")
        var y = x, bottom = bottom, right = right
        while bottom > 0 || right > 0 {
            let b = min(bottom, y.shape[2] - 1), r = min(right, y.shape[3] - 1)
            y = y.padded2d(left: 0, right: r, top: 0, bottom: b, mode: .reflect)
            bottom -= b
            right -= r
        }
        return y
    }

    /// Multiply-accumulates of one forward pass on a `1 × dd_in × height × width` input (at the padded size):
    /// convolutions (including the depthwise ones), linear layers and the attention products q·kᵀ and attn·v.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let h = paddedSide(height), w = paddedSide(width), e = config.embedDim
        var macs = h * w * config.ddIn * e * 9 + h * w * 2 * e * config.inChans * 9
        let encoders = [encoderLayer0, encoderLayer1, encoderLayer2, encoderLayer3]
        for level in 0..<4 {
            let lh = h >> level, lw = w >> level, dim = e << level
            macs += encoders[level].multiplyAccumulates(height: lh, width: lw)
            macs += (lh / 2) * (lw / 2) * dim * 2 * dim * 16
        }
        macs += conv.multiplyAccumulates(height: h / 16, width: w / 16)
        let decoders = [decoderLayer0, decoderLayer1, decoderLayer2, decoderLayer3]
        let ups = [upsample0, upsample1, upsample2, upsample3]
        for k in 0..<4 {
            let level = 3 - k, lh = h >> level, lw = w >> level
            macs += lh * lw * ups[k].inChannels * ups[k].outChannels       // 2×2 kernel, stride 2
            macs += decoders[k].multiplyAccumulates(height: lh, width: lw)
        }
        return macs
    }
}

extension Uformer {
    /// The official constructor's arguments (defaults as officially); see `UformerConfig` for each.
    public convenience init(imgSize: Int = 256, inChans: Int = 3, ddIn: Int = 3, embedDim: Int = 32,
                            depths: [Int] = [2, 2, 2, 2, 2, 2, 2, 2, 2], numHeads: [Int] = [1, 2, 4, 8, 16, 16, 8, 4, 2],
                            winSize: Int = 8, mlpRatio: Double = 4, qkvBias: Bool = true, qkScale: Double? = nil,
                            dropPathRate: Double = 0.1, tokenProjection: UformerTokenProjection = .linear, tokenMlp: UformerTokenMLP = .leff,
                            shiftFlag: Bool = true, modulator: Bool = false) {
        var c = UformerConfig()
        c.imgSize = imgSize
        c.inChans = inChans
        c.ddIn = ddIn
        c.embedDim = embedDim
        c.depths = depths
        c.numHeads = numHeads
        c.winSize = winSize
        c.mlpRatio = mlpRatio
        c.qkvBias = qkvBias
        c.qkScale = qkScale
        c.dropPathRate = dropPathRate
        c.tokenProjection = tokenProjection
        c.tokenMlp = tokenMlp
        c.shiftFlag = shiftFlag
        c.modulator = modulator
        self.init(config: c)
    }
}
