// Restormer as an ONNX graph, from its configuration and state dict (swz30/Restormer `restormer_arch.py`):
// MDTA, GDFN, WithBias/BiasFree LayerNorm, PixelUnshuffle/PixelShuffle resampling, refinement and the global
// residual (or the dual-pixel `skip_conv`). Like `Inference.restore`, the graph pads the input to the size
// multiple (reflect, or zeros for images smaller than the padding) and crops the result back.

import SKDModels

extension GraphBuilder {
    /// MDTA: `[N, C, H, W]` → `[N, C, H, W]`.
    func restormerAttention(_ x: String, _ prefix: String, heads: Int) throws -> String {
        let c = try parameters.shape(prefix + ".project_out.weight")[0]
        let mixed = try depthwiseConv(try conv(x, prefix + ".qkv", padding: 0), prefix + ".qkv_dwconv")
        let qkv = node("Split", [mixed], [("axis", .int(1))], outputs: 3, hint: prefix + ".qkv")
        // b (head c) h w -> b head c (h w)
        func split(_ t: String) -> String { reshape(t, [.sizes([0, heads, c / heads, -1])]) }
        // F.normalize(t, dim=-1): t / max(‖t‖₂, 1e-12).
        func normalized(_ t: String) -> String {
            let norm = op("ReduceL2", t, attributes: [("axes", .ints([-1])), ("keepdims", .int(1))])
            return op("Div", t, op("Max", norm, scalarFloat(1e-12)))
        }
        let q = normalized(split(qkv[0])), k = normalized(split(qkv[1])), v = split(qkv[2])
        let temperature = try parameter(prefix + ".temperature")                       // [heads, 1, 1]
        let logits = op("Mul", op("MatMul", q, transpose(k, [0, 1, 3, 2])), temperature)
        let attention = op("Softmax", logits, attributes: [("axis", .int(-1))])
        let out = op("Reshape", op("MatMul", attention, v), op("Shape", x))           // b head c (h w) -> b (head c) h w
        return try conv(out, prefix + ".project_out", padding: 0)
    }

    /// GDFN: `[N, C, H, W]` → `[N, C, H, W]`.
    func restormerFeedForward(_ x: String, _ prefix: String) throws -> String {
        let hidden = try depthwiseConv(try conv(x, prefix + ".project_in", padding: 0), prefix + ".dwconv")
        let halves = node("Split", [hidden], [("axis", .int(1))], outputs: 2, hint: prefix + ".dwconv")
        return try conv(op("Mul", gelu(halves[0]), halves[1]), prefix + ".project_out", padding: 0)
    }

    /// The blocks `prefix.0 … prefix.(count−1)` in sequence.
    func restormerBlocks(_ x: String, _ prefix: String, count: Int, heads: Int, withBias: Bool) throws -> String {
        var y = x
        for i in 0..<count {
            let p = "\(prefix).\(i)"
            y = op("Add", y, try restormerAttention(try channelLayerNorm(y, p + ".norm1.body", withBias: withBias), p + ".attn", heads: heads))
            y = op("Add", y, try restormerFeedForward(try channelLayerNorm(y, p + ".norm2.body", withBias: withBias), p + ".ffn"), hint: p)
        }
        return y
    }

    /// `Downsample`: 3×3 convolution then PixelUnshuffle(2) (SpaceToDepth, whose channel order `(i·2+j)·C + c`
    /// is permuted to PyTorch's `c·4 + i·2 + j`).
    func restormerDownsample(_ x: String, _ prefix: String) throws -> String {
        let channels = try parameters.shape(prefix + ".body.0.weight")[0]
        let s2d = op("SpaceToDepth", try conv(x, prefix + ".body.0", padding: 1), attributes: [("blocksize", .int(2))])
        var order = [Int]()
        for c in 0..<channels { for ij in 0..<4 { order.append(ij * channels + c) } }
        return op("Gather", s2d, ints(order), attributes: [("axis", .int(1))], hint: prefix)
    }

    /// `Upsample`: 3×3 convolution then PixelShuffle(2) (DepthToSpace in CRD mode).
    func restormerUpsample(_ x: String, _ prefix: String) throws -> String {
        op("DepthToSpace", try conv(x, prefix + ".body.0", padding: 1), attributes: [("blocksize", .int(2)), ("mode", .string("CRD"))], hint: prefix)
    }

    /// The whole network on `input` `[N, inp_channels, H, W]`, H and W multiples of 8.
    func restormer(_ input: String, arguments a: OfficialArguments) throws -> String {
        let withBias = try a.string("LayerNorm_type") != "BiasFree"
        let b = try a.ints("num_blocks"), h = try a.ints("heads")
        guard b.count == 4, h.count == 4 else { throw ONNXExportError("restormer configuration: num_blocks \(b) and heads \(h) need four entries each") }
        let inpEnc1 = try conv(input, "patch_embed.proj", padding: 1)
        let enc1 = try restormerBlocks(inpEnc1, "encoder_level1", count: b[0], heads: h[0], withBias: withBias)
        let enc2 = try restormerBlocks(try restormerDownsample(enc1, "down1_2"), "encoder_level2", count: b[1], heads: h[1], withBias: withBias)
        let enc3 = try restormerBlocks(try restormerDownsample(enc2, "down2_3"), "encoder_level3", count: b[2], heads: h[2], withBias: withBias)
        let latent = try restormerBlocks(try restormerDownsample(enc3, "down3_4"), "latent", count: b[3], heads: h[3], withBias: withBias)
        func cat(_ a: String, _ b: String) -> String { node("Concat", [a, b], [("axis", .int(1))])[0] }
        let inpDec3 = try conv(cat(try restormerUpsample(latent, "up4_3"), enc3), "reduce_chan_level3", padding: 0)
        let dec3 = try restormerBlocks(inpDec3, "decoder_level3", count: b[2], heads: h[2], withBias: withBias)
        let inpDec2 = try conv(cat(try restormerUpsample(dec3, "up3_2"), enc2), "reduce_chan_level2", padding: 0)
        let dec2 = try restormerBlocks(inpDec2, "decoder_level2", count: b[1], heads: h[1], withBias: withBias)
        let dec1 = try restormerBlocks(cat(try restormerUpsample(dec2, "up2_1"), enc1), "decoder_level1", count: b[0], heads: h[0], withBias: withBias)
        let refined = try restormerBlocks(dec1, "refinement", count: try a.int("num_refinement_blocks"), heads: h[0], withBias: withBias)
        if try a.bool("dual_pixel_task") {
            return try conv(op("Add", refined, try conv(inpEnc1, "skip_conv", padding: 0)), "output", padding: 1)
        }
        return op("Add", try conv(refined, "output", padding: 1), input, hint: "restored")
    }

    /// `Inference.restore` around the network: pads `[N, C, H, W]` to multiples of `multiple` at the bottom and
    /// right — reflect when the padding is smaller than both sides, zeros otherwise — runs `body`, and crops back.
    /// `fixed` skips the padding when the exported size needs none.
    func paddedForInference(_ x: String, multiple: Int, fixed: (height: Int, width: Int)?, body: (String) throws -> String) rethrows -> String {
        if let fixed, fixed.height % multiple == 0, fixed.width % multiple == 0 { return try body(x) }
        let height = dim(x, 2), width = dim(x, 3)
        let paddedH = roundUp(height, multiple), paddedW = roundUp(width, multiple)
        let padH = op("Sub", paddedH, height), padW = op("Sub", paddedW, width)
        let reflected = reflectPadBottomRight(x, height: height, width: width, paddedH: paddedH, paddedW: paddedW)
        let zeros = op("Pad", x, shape([.sizes([0, 0, 0, 0, 0, 0]), .tensor(padH), .tensor(padW)]), attributes: [("mode", .string("constant"))])
        let reflect = op("And", op("Less", padH, height), op("Less", padW, width))
        let padded = op("Where", reflect, reflected, zeros, hint: "padded")
        return cropTopLeft(try body(padded), height: height, width: width)
    }
}
