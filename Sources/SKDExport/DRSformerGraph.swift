// DRSformer as an ONNX graph, from its configuration (official argument names) and state dict
// (cschenxiang/DRSformer `DRSformer_arch.py`): top-k sparse attention (TKSA: `TopK` indices scattered into a mask
// with `ScatterElements`, four masks of C/2, 2C/3, 3C/4, 4C/5 per head, softmaxes weighted by `attn1…attn4`), the
// mixed-scale feed-forward network (MSFN), the mixture-of-experts feature compensator (MEFC, `encoder_level0` and
// `refinement`) and the Restormer-shaped U-Net around them. Padding as `Inference.restore` (multiple of 8).

import Foundation
import SKDModels

extension GraphBuilder {
    /// `ConstantOfShape(shape)` filled with `value` (float32).
    func filled(like shapeTensor: String, _ value: Float) -> String {
        op("ConstantOfShape", shapeTensor, attributes: [("value", .tensor(ONNXTensor(name: "value", floats: [value], shape: [1])))])
    }

    /// TKSA: `[N, C, H, W]` → `[N, C, H, W]`.
    func drsformerAttention(_ x: String, _ prefix: String, heads: Int) throws -> String {
        let c = try parameters.shape(prefix + ".project_out.weight")[0]
        let ch = c / heads
        let mixed = try depthwiseConv(try conv(x, prefix + ".qkv", padding: 0), prefix + ".qkv_dwconv")
        let qkv = node("Split", [mixed], [("axis", .int(1))], outputs: 3, hint: prefix + ".qkv")
        func split(_ t: String) -> String { reshape(t, [.sizes([0, heads, ch, -1])]) }
        func normalized(_ t: String) -> String {
            let norm = op("ReduceL2", t, attributes: [("axes", .ints([-1])), ("keepdims", .int(1))])
            return op("Div", t, op("Max", norm, scalarFloat(1e-12)))
        }
        let q = normalized(split(qkv[0])), k = normalized(split(qkv[1])), v = split(qkv[2])
        let scores = op("Mul", op("MatMul", q, transpose(k, [0, 1, 3, 2])), try parameter(prefix + ".temperature"))  // [N, heads, ch, ch]
        let zeros = filled(like: op("Shape", scores), 0)
        var mixedAttention: String? = nil
        for (i, kk) in [ch / 2, ch * 2 / 3, ch * 3 / 4, ch * 4 / 5].enumerated() {
            let indices = node("TopK", [scores, ints([kk])], [("axis", .int(-1)), ("largest", .int(1)), ("sorted", .int(1))], outputs: 2)[1]
            let mask = op("ScatterElements", zeros, indices, filled(like: op("Shape", indices), 1), attributes: [("axis", .int(-1))])
            let sparse = op("Where", op("Greater", mask, scalarFloat(0)), scores, scalarFloat(-Float.infinity))
            let weighted = op("Mul", op("Softmax", sparse, attributes: [("axis", .int(-1))]), try parameter("\(prefix).attn\(i + 1)"))
            mixedAttention = mixedAttention.map { op("Add", $0, weighted) } ?? weighted
        }
        let out = op("Reshape", op("MatMul", mixedAttention!, v), op("Shape", x))
        return try conv(out, prefix + ".project_out", padding: 0)
    }

    /// MSFN: `[N, C, H, W]` → `[N, C, H, W]`.
    func drsformerFeedForward(_ x: String, _ prefix: String) throws -> String {
        let y = try conv(x, prefix + ".project_in", padding: 0)
        func grouped(_ t: String, _ name: String, _ padding: Int) throws -> String {
            // Depthwise (groups = in = out) or two input channels per group (groups = out): groups = out either way.
            try conv(t, "\(prefix).\(name)", padding: padding, groups: try parameters.shape("\(prefix).\(name).weight")[0])
        }
        let b3 = node("Split", [op("Relu", try grouped(y, "dwconv3x3", 1))], [("axis", .int(1))], outputs: 2)
        let b5 = node("Split", [op("Relu", try grouped(y, "dwconv5x5", 2))], [("axis", .int(1))], outputs: 2)
        let x1 = op("Relu", try grouped(node("Concat", [b3[0], b5[0]], [("axis", .int(1))])[0], "dwconv3x3_1", 1))
        let x2 = op("Relu", try grouped(node("Concat", [b3[1], b5[1]], [("axis", .int(1))])[0], "dwconv5x5_1", 2))
        return try conv(node("Concat", [x1, x2], [("axis", .int(1))])[0], prefix + ".project_out", padding: 0)
    }

    /// The transformer blocks `prefix.0 … prefix.(count−1)`.
    func drsformerBlocks(_ x: String, _ prefix: String, count: Int, heads: Int, withBias: Bool) throws -> String {
        var y = x
        for i in 0..<count {
            let p = "\(prefix).\(i)"
            y = op("Add", y, try drsformerAttention(try channelLayerNorm(y, p + ".norm1.body", withBias: withBias), p + ".attn", heads: heads))
            y = op("Add", y, try drsformerFeedForward(try channelLayerNorm(y, p + ".norm2.body", withBias: withBias), p + ".ffn"), hint: p)
        }
        return y
    }

    /// The eight MEFC operations, in `DRSformerOperation` order, applied to `x`.
    private func drsformerOperations(_ x: String, _ prefix: String) throws -> [String] {
        func sep(_ j: Int, _ k: Int) throws -> String {
            let p = "\(prefix)._ops.\(j).op"
            let a = try conv(try conv(x, p + ".0", padding: k / 2, groups: try parameters.shape(p + ".0.weight")[0]), p + ".1", padding: 0)
            return try conv(try conv(op("Relu", a), p + ".3", padding: k / 2, groups: try parameters.shape(p + ".3.weight")[0]), p + ".4", padding: 0)
        }
        func dil(_ j: Int, _ k: Int) throws -> String {
            let p = "\(prefix)._ops.\(j).op"
            return try conv(try conv(x, p + ".0", padding: k - 1, groups: try parameters.shape(p + ".0.weight")[0], dilation: 2), p + ".1", padding: 0)
        }
        let pool = op("AveragePool", x, attributes: [("kernel_shape", .ints([3, 3])), ("strides", .ints([1, 1])), ("pads", .ints([1, 1, 1, 1])),
                                                    ("count_include_pad", .int(0))])
        return [try sep(0, 1), try sep(1, 3), try sep(2, 5), try sep(3, 7), try dil(4, 3), try dil(5, 5), try dil(6, 7), pool]
    }

    /// MEFC (`subnet`: `layers.0` an OALayer, `layers.1` a GroupOLs of `steps` operation layers) on `[N, C, H, W]`.
    func drsformerSubnet(_ x: String, _ prefix: String) throws -> String {
        let numOps = 8
        // OALayer: global average → Linear → ReLU → Linear → [N, steps, ops] → softmax over the operations.
        let stepsTimesOps = try parameters.shape(prefix + ".layers.0.ca_fc.2.weight")[0]
        guard stepsTimesOps % numOps == 0 else { throw ONNXExportError("'\(prefix).layers.0.ca_fc.2.weight' has \(stepsTimesOps) rows, not a multiple of \(numOps) operations") }
        let steps = stepsTimesOps / numOps
        let pooled = op("Flatten", op("GlobalAveragePool", x), attributes: [("axis", .int(1))])
        let logits = try linear(op("Relu", try linear(pooled, prefix + ".layers.0.ca_fc.0")), prefix + ".layers.0.ca_fc.2")
        let weights = op("Softmax", reshape(logits, [.sizes([0, steps, numOps])]), attributes: [("axis", .int(-1))])
        // GroupOLs: s = relu(conv1×1(x)); per step s = relu(OL(s) + s).
        let group = prefix + ".layers.1"
        var s = op("Relu", try conv(x, group + ".preprocess.op.0", padding: 0))
        for i in 0..<steps {
            let layer = "\(group)._ops.\(i)"
            let states = try drsformerOperations(s, layer).enumerated().map { j, state -> String in
                let w = op("Unsqueeze", op("Slice", weights, ints([i, j]), ints([i + 1, j + 1]), ints([1, 2])), ints([3]))  // [N, 1, 1, 1]
                return op("Mul", state, w)
            }
            let combined = op("Relu", try conv(node("Concat", states, [("axis", .int(1))])[0], layer + "._out.0", padding: 0))
            s = op("Relu", op("Add", combined, s), hint: layer)
        }
        return s
    }

    /// The whole network on `input` `[N, inp_channels, H, W]`, H and W multiples of 8.
    func drsformer(_ input: String, arguments a: OfficialArguments) throws -> String {
        let b = try a.ints("num_blocks"), h = try a.ints("heads")
        let withBias = try a.string("LayerNorm_type") != "BiasFree"
        guard b.count == 4, h.count == 4 else { throw ONNXExportError("drsformer configuration: num_blocks \(b) and heads \(h) need four entries each") }
        var inpEnc1 = try conv(input, "patch_embed.proj", padding: 1)
        if try a.bool("mefc") { inpEnc1 = try drsformerSubnet(inpEnc1, "encoder_level0") }
        let enc1 = try drsformerBlocks(inpEnc1, "encoder_level1", count: b[0], heads: h[0], withBias: withBias)
        let enc2 = try drsformerBlocks(try restormerDownsample(enc1, "down1_2"), "encoder_level2", count: b[1], heads: h[1], withBias: withBias)
        let enc3 = try drsformerBlocks(try restormerDownsample(enc2, "down2_3"), "encoder_level3", count: b[2], heads: h[2], withBias: withBias)
        let latent = try drsformerBlocks(try restormerDownsample(enc3, "down3_4"), "latent", count: b[3], heads: h[3], withBias: withBias)
        func cat(_ x: String, _ y: String) -> String { node("Concat", [x, y], [("axis", .int(1))])[0] }
        let inpDec3 = try conv(cat(try restormerUpsample(latent, "up4_3"), enc3), "reduce_chan_level3", padding: 0)
        let dec3 = try drsformerBlocks(inpDec3, "decoder_level3", count: b[2], heads: h[2], withBias: withBias)
        let inpDec2 = try conv(cat(try restormerUpsample(dec3, "up3_2"), enc2), "reduce_chan_level2", padding: 0)
        let dec2 = try drsformerBlocks(inpDec2, "decoder_level2", count: b[1], heads: h[1], withBias: withBias)
        var dec1 = try drsformerBlocks(cat(try restormerUpsample(dec2, "up2_1"), enc1), "decoder_level1", count: b[0], heads: h[0], withBias: withBias)
        if try a.bool("mefc") { dec1 = try drsformerSubnet(dec1, "refinement") }
        return op("Add", try conv(dec1, "output", padding: 1), input, hint: "restored")
    }
}
