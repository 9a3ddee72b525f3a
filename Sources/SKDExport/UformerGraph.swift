// Uformer as an ONNX graph, from its configuration and state dict (ZhendongWang6/Uformer `model.py`,
// token_projection 'linear'): LeWin blocks (cyclic shift, window partition, window attention with the
// relative-position bias and the −100 shifted-window mask, modulator, window merge), LeFF or MLP feed-forward,
// strided-convolution down-sampling, transposed-convolution up-sampling and the global residual. As
// `Uformer.forward`, the input is reflect-padded (repeatedly, any amount) to the model's size multiple and the
// output cropped back.
//
// Tokens `[B, H·W, C]` are held as `[B, H, W, C]` — the same memory — so that the window plumbing is plain
// Reshape/Transpose and the token LayerNorm is ONNX's LayerNormalization over the last axis.

import SKDModels

extension GraphBuilder {
    /// The geometry of one LeWin block, as `UformerLeWinBlock.init` derives it: a stage whose side
    /// `img_size / 2^level` is at most the window uses that side as its window and no shift.
    struct UformerBlockGeometry {
        var window: Int
        var shift: Int
    }

    /// The shifted-window mask `[nW, 1, N, N]` (0 within a region, −100 across) for a `height × width` map.
    func uformerShiftMask(height: String, width: String, window w: Int, shift s: Int) -> String {
        func labels(_ extent: String) -> String {
            let r = op("Range", scalarInt(0), op("Squeeze", extent, ints([0])), scalarInt(1))
            let a = op("Cast", op("GreaterOrEqual", r, op("Sub", extent, ints([w]))), attributes: [("to", .int(ONNXElementType.int64.rawValue))])
            let b = op("Cast", op("GreaterOrEqual", r, op("Sub", extent, ints([s]))), attributes: [("to", .int(ONNXElementType.int64.rawValue))])
            return op("Add", a, b)
        }
        let rows = op("Mul", op("Unsqueeze", labels(height), ints([1])), ints([3]))
        let map = op("Add", rows, labels(width))                                        // [H, W]
        let tiles = reshape(map, [.tensor(div(height, w)), .sizes([w]), .tensor(div(width, w)), .sizes([w])])
        let perWindow = reshape(transpose(tiles, [0, 2, 1, 3]), [.sizes([-1, w * w])]) // [nW, N]
        let same = op("Equal", op("Unsqueeze", perWindow, ints([2])), op("Unsqueeze", perWindow, ints([1])))
        let mask = op("Where", same, scalarFloat(0), scalarFloat(-100))                 // [nW, N, N]
        return op("Unsqueeze", mask, ints([1]), hint: "shift_mask")
    }

    /// Window attention on windows `[B·nW, N, C]` → `[B·nW, N, C]`.
    func uformerWindowAttention(_ x: String, _ prefix: String, dim c: Int, heads: Int, window: Int, qkScale: Double?,
                                mask: (mask: String, windows: String)?) throws -> String {
        let n = window * window, d = c / heads
        let tableShape = try parameters.shape(prefix + ".relative_position_bias_table")
        guard tableShape == [(2 * window - 1) * (2 * window - 1), heads] else {
            throw ONNXExportError("'\(prefix).relative_position_bias_table' has shape \(tableShape), expected [\((2 * window - 1) * (2 * window - 1)), \(heads)] for \(window)×\(window) windows and \(heads) heads")
        }
        let scale = qkScale.map { Float($0) } ?? 1 / Float(d).squareRoot()
        let q = try linear(x, prefix + ".qkv.to_q", scale: scale, hint: "scaled_weight_T")
        let k = try linear(x, prefix + ".qkv.to_kv", rows: 0..<c, hint: "k_weight_T")
        let v = try linear(x, prefix + ".qkv.to_kv", rows: c..<(2 * c), hint: "v_weight_T")
        func split(_ t: String) -> String { transpose(reshape(t, [.sizes([0, 0, heads, d])]), [0, 2, 1, 3]) }
        // The relative-position bias [heads, N, N], gathered from the table once, at export.
        let table = try parameters.values(prefix + ".relative_position_bias_table")
        var bias = [Float](repeating: 0, count: heads * n * n)
        for i in 0..<n {
            for j in 0..<n {
                let index = (i / window - j / window + window - 1) * (2 * window - 1) + (i % window - j % window + window - 1)
                for h in 0..<heads { bias[(h * n + i) * n + j] = table[index * heads + h] }
            }
        }
        var logits = op("Add", op("MatMul", split(q), transpose(split(k), [0, 1, 3, 2])),
                        floats(prefix + ".relative_position_bias", bias, shape: [heads, n, n]))
        if let mask {
            let grouped = reshape(logits, [.sizes([-1]), .tensor(mask.windows), .sizes([heads, n, n])])
            logits = reshape(op("Add", grouped, mask.mask), [.sizes([-1, heads, n, n])])
        }
        let attention = op("Softmax", logits, attributes: [("axis", .int(-1))])
        let out = reshape(transpose(op("MatMul", attention, split(v)), [0, 2, 1, 3]), [.sizes([0, 0, c])])
        return try linear(out, prefix + ".proj")
    }

    /// `torch.roll(x, (by, by), (1, 2))` on `[B, H, W, C]` (`by` may be negative; `|by|` < H, W).
    func roll(_ x: String, by: Int) -> String {
        var y = x
        for axis in [1, 2] {
            // roll by k: the last k entries move to the front.
            let k = by
            let tail = op("Slice", y, ints([-k]), ints([Int(Int64.max)]), ints([axis]))
            let head = op("Slice", y, ints([0]), ints([-k]), ints([axis]))
            y = node("Concat", [tail, head], [("axis", .int(axis))], hint: "rolled")[0]
        }
        return y
    }

    /// One LeWin block on `[B, H, W, C]`.
    func uformerLeWinBlock(_ x: String, _ prefix: String, dim c: Int, heads: Int, geometry g: UformerBlockGeometry,
                           qkScale: Double?, height: String, width: String, masks: inout [String: (String, String)]) throws -> String {
        let w = g.window, n = w * w
        var shifted = try layerNormLast(x, prefix + ".norm1")
        if g.shift > 0 { shifted = roll(shifted, by: -g.shift) }
        let tiles = reshape(shifted, [.sizes([-1]), .tensor(div(height, w)), .sizes([w]), .tensor(div(width, w)), .sizes([w, c])])
        var windows = reshape(transpose(tiles, [0, 1, 3, 2, 4, 5]), [.sizes([-1, n, c])])   // [B·nW, N, C]
        if parameters.has(prefix + ".modulator.weight") {
            windows = op("Add", windows, try parameter(prefix + ".modulator.weight"))
        }
        var mask: (mask: String, windows: String)? = nil
        if g.shift > 0 {
            let key = "\(w)/\(g.shift)"
            if masks[key] == nil {
                let count = op("Mul", div(height, w), div(width, w))
                masks[key] = (uformerShiftMask(height: height, width: width, window: w, shift: g.shift), count)
            }
            mask = masks[key]
        }
        let attended = try uformerWindowAttention(windows, prefix + ".attn", dim: c, heads: heads, window: w, qkScale: qkScale, mask: mask)
        let grid = reshape(attended, [.sizes([-1]), .tensor(div(height, w)), .tensor(div(width, w)), .sizes([w, w, c])])
        var merged = reshape(transpose(grid, [0, 1, 3, 2, 4, 5]), [.sizes([-1]), .tensor(height), .tensor(width), .sizes([c])])
        if g.shift > 0 { merged = roll(merged, by: g.shift) }
        let y = op("Add", x, merged)
        let normed = try layerNormLast(y, prefix + ".norm2")
        let mlp: String
        if parameters.has(prefix + ".mlp.linear1.0.weight") {
            // LeFF: Linear + GELU, depthwise 3×3 + GELU on the map, Linear.
            let hidden = gelu(try linear(normed, prefix + ".mlp.linear1.0"))
            let mixed = gelu(try depthwiseConv(transpose(hidden, [0, 3, 1, 2]), prefix + ".mlp.dwconv.0"))
            mlp = try linear(transpose(mixed, [0, 2, 3, 1]), prefix + ".mlp.linear2.0")
        } else {
            mlp = try linear(gelu(try linear(normed, prefix + ".mlp.fc1")), prefix + ".mlp.fc2")
        }
        return op("Add", y, mlp, hint: prefix)
    }

    /// A stage (`BasicUformerLayer`) at `level` (side `img_size / 2^level`) on `[B, H, W, C]`.
    func uformerStage(_ x: String, _ prefix: String, level: Int, stageIndex: Int, dim: Int, arguments a: OfficialArguments,
                      height: String, width: String) throws -> String {
        let resolution = try a.int("img_size") >> level, window = try a.int("win_size"), shiftFlag = try a.bool("shift_flag")
        let depths = try a.ints("depths"), heads = try a.ints("num_heads")
        guard depths.count == 9, heads.count == 9 else { throw ONNXExportError("uformer configuration: depths \(depths) and num_heads \(heads) need nine entries each") }
        var masks: [String: (String, String)] = [:]
        var y = x
        for i in 0..<depths[stageIndex] {
            var g = UformerBlockGeometry(window: window, shift: shiftFlag && i % 2 == 1 ? window / 2 : 0)
            if resolution <= window { g = UformerBlockGeometry(window: resolution, shift: 0) }
            y = try uformerLeWinBlock(y, "\(prefix).blocks.\(i)", dim: dim, heads: heads[stageIndex], geometry: g,
                                      qkScale: try a.optionalDouble("qk_scale"), height: height, width: width, masks: &masks)
        }
        return y
    }

    /// The whole network on `input` `[N, dd_in, H, W]`; `multiple` is the model's size multiple.
    func uformer(_ input: String, arguments a: OfficialArguments, multiple: Int, fixed: (height: Int, width: Int)?) throws -> String {
        let height = dim(input, 2), width = dim(input, 3)
        let needsPadding = fixed.map { $0.height % multiple != 0 || $0.width % multiple != 0 } ?? true
        var h = height, w = width, x = input
        if needsPadding {
            h = roundUp(height, multiple)
            w = roundUp(width, multiple)
            x = reflectPadBottomRight(input, height: height, width: width, paddedH: h, paddedW: w)
        }
        let e = try a.int("embed_dim")
        func nhwc(_ t: String) -> String { transpose(t, [0, 2, 3, 1]) }
        func nchw(_ t: String) -> String { transpose(t, [0, 3, 1, 2]) }
        let hs = (0...4).map { div(h, 1 << $0) }, ws = (0...4).map { div(w, 1 << $0) }
        let projected = op("LeakyRelu", try conv(x, "input_proj.proj.0", padding: 1), attributes: [("alpha", .float(0.01))])
        var skips: [String] = []
        var y = nhwc(projected)
        for level in 0..<4 {
            y = try uformerStage(y, "encoderlayer_\(level)", level: level, stageIndex: level, dim: e << level, arguments: a, height: hs[level], width: ws[level])
            skips.append(y)
            y = nhwc(try conv(nchw(y), "dowsample_\(level).conv.0", stride: 2, padding: 1))
        }
        y = try uformerStage(y, "conv", level: 4, stageIndex: 4, dim: 16 * e, arguments: a, height: hs[4], width: ws[4])
        for k in 0..<4 {
            let level = 3 - k
            let up = nhwc(try convTranspose(nchw(y), "upsample_\(k).deconv.0", stride: 2))
            let joined = node("Concat", [up, skips[level]], [("axis", .int(3))])[0]
            y = try uformerStage(joined, "decoderlayer_\(k)", level: level, stageIndex: 5 + k, dim: 2 * (e << level), arguments: a,
                                 height: hs[level], width: ws[level])
        }
        var out = try conv(nchw(y), "output_proj.proj.0", padding: 1)
        if try a.int("dd_in") == 3 { out = op("Add", x, out, hint: "restored") }
        return needsPadding ? cropTopLeft(out, height: height, width: width) : out
    }
}
