// Restormer against the official PyTorch implementation (golden files written by swz30/Restormer's
// `restormer_arch.py`), its published statistics, and finite differences.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class RestormerParityTests: XCTestCase {
    /// Parameter counts and MACs at 512×512 agree with the figures measured on the official code.
    func testPresetStatistics() throws {
        let official: [(String, Double, Double)] = [("restormer", 26.13e6, 619.5e9), ("restormer-s", 6.07e6, 99.4e9)]
        for (name, parameters, macs) in official {
            let model = Restormer(config: try XCTUnwrap(RestormerConfig.preset(name)))
            let p = Double(model.parameterCount), m = Double(model.multiplyAccumulates(height: 512, width: 512))
            print(String(format: "%@: %.3f M parameters, %.2f GMAC at 512×512", name, p / 1e6, m / 1e9))
            XCTAssertLessThan(abs(p - parameters) / parameters, 0.01, "\(name) parameters \(p)")
            XCTAssertLessThan(abs(m - macs) / macs, 0.01, "\(name) MACs \(m)")
        }
        XCTAssertNil(RestormerConfig.preset("restormer-xl"))
    }

    /// The config decodes from the official argument names, ignores unknown keys and falls back to the defaults.
    func testConfigDecoding() throws {
        let json = #"{"arch": "restormer", "dim": 12, "num_blocks": [2, 1, 1, 1], "LayerNorm_type": "BiasFree", "bias": true}"#
        let config = try JSONDecoder().decode(RestormerConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.dim, 12)
        XCTAssertEqual(config.numBlocks, [2, 1, 1, 1])
        XCTAssertEqual(config.layerNormType, .biasFree)
        XCTAssertTrue(config.bias)
        XCTAssertEqual(config.heads, [1, 2, 4, 8])
        XCTAssertEqual(config.numRefinementBlocks, 4)
        XCTAssertEqual(config.ffnExpansionFactor, 2.66)
        XCTAssertFalse(config.dualPixelTask)
        // Round trip through the official names.
        let encoded = try JSONEncoder().encode(config)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any]).keys
        XCTAssertTrue(keys.contains("LayerNorm_type") && keys.contains("num_refinement_blocks") && keys.contains("inp_channels"))
        XCTAssertEqual(try JSONDecoder().decode(RestormerConfig.self, from: encoded), config)
        // Python's int() truncation of the hidden width.
        XCTAssertEqual(config.hiddenFeatures(48), 127)
        XCTAssertEqual(config.hiddenFeatures(8), 21)
    }

    /// Parameter names are the official state_dict keys (spot checks of every kind of module).
    func testParameterNames() throws {
        var config = RestormerConfig()
        config.dim = 8
        config.numBlocks = [1, 1, 1, 1]
        config.numRefinementBlocks = 1
        let names = Set(Restormer(config: config).namedParameters().map(\.0))
        for name in ["patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight", "encoder_level1.0.norm1.body.bias",
                     "encoder_level1.0.attn.temperature", "encoder_level1.0.attn.qkv_dwconv.weight",
                     "latent.0.ffn.project_in.weight", "down1_2.body.0.weight", "up2_1.body.0.weight",
                     "reduce_chan_level3.weight", "refinement.0.attn.project_out.weight", "output.weight"] {
            XCTAssertTrue(names.contains(name), "missing \(name)")
        }
        XCTAssertFalse(names.contains("output.bias"), "bias=False leaves the convolutions without bias")
        XCTAssertFalse(names.contains { $0.hasPrefix("skip_conv") })

        config.dualPixelTask = true
        config.inpChannels = 6
        let dualPixel = Restormer(config: config)
        XCTAssertTrue(dualPixel.namedParameters().contains { $0.0 == "skip_conv.weight" })
        let y = noGrad { dualPixel(randomTensor([1, 6, 8, 16], seed: 3)) }
        XCTAssertEqual(y.shape, [1, 3, 8, 16])
    }

    /// One transformer block (MDTA + GDFN, both LayerNorm variants) against finite differences, on an odd-sized
    /// map with a channel count that is not a multiple of 4 and two heads.
    func testTransformerBlockGradients() {
        for type in [LayerNormType.withBias, .biasFree] {
            let block = RestormerTransformerBlock(dim: 6, numHeads: 2, hiddenFeatures: 7, bias: type == .biasFree, layerNormType: type)
            var rng = SKDRandom(seed: 11)
            for (_, p) in block.namedParameters() { p.assign(p + Tensor.uniform(p.shape, low: -0.3, high: 0.3, using: &rng)) }
            let x = randomTensor([2, 6, 5, 3], seed: 12)
            checkGradients("block \(type)", inputs: [x, block.attn.temperature, block.norm1.body.weight, block.attn.qkv.weight,
                                                   block.ffn.dwconv.weight, block.ffn.projectOut.weight]) { block($0[0]) }
        }
    }

    /// The fused attention core equals the official formulation written with generic ops.
    func testFusedAttentionMatchesComposition() {
        let (b, c, h, w, heads) = (2, 6, 3, 5, 3)
        let qkv = randomTensor([b, 3 * c, h, w], seed: 21)
        let temperature = randomTensor([heads, 1, 1], seed: 22, low: 0.5, high: 2)
        qkv.requiresGrad = true
        temperature.requiresGrad = true
        let parts = qkv.chunk(3, axis: 1).map { $0.reshaped([b, heads, c / heads, h * w]) }
        let q = parts[0].l2Normalized(), k = parts[1].l2Normalized()
        let attention = (Tensor.matmul(q, k, transposeB: true) * temperature).softmax()
        let reference = Tensor.matmul(attention, parts[2]).reshaped([b, c, h, w])
        let probe = randomTensor(reference.shape, seed: 23)
        (reference * probe).sum().backward()
        let wantQKV = qkv.grad!.copy(), wantTemperature = temperature.grad!.copy()
        qkv.grad = nil
        temperature.grad = nil

        let fused = Tensor.mdtaAttention(qkv: qkv, temperature: temperature, heads: heads)
        XCTAssertLessThan(relativeError(fused, reference), 1e-5)
        (fused * probe).sum().backward()
        XCTAssertLessThan(relativeError(qkv.grad!, wantQKV), 1e-5)
        XCTAssertLessThan(relativeError(temperature.grad!, wantTemperature), 1e-5)
        checkGradients("mdtaAttention", inputs: [qkv.detached(), temperature.detached()]) {
            Tensor.mdtaAttention(qkv: $0[0], temperature: $0[1], heads: heads)
        }
    }

    /// The GDFN gate equals gelu(x₁)·x₂ on the two channel halves, element by element, over the range where GELU
    /// bends and well into both tails (its branch-free erf is not libm's).
    func testGateMatchesComposition() {
        let x = randomTensor([2, 10, 3, 5], seed: 31, low: -7, high: 7)
        let halves = x.chunk(2, axis: 1)
        let gelu = halves[0].gelu(), gated = x.gdfnGate()
        var worst: Float = 0
        for i in 0..<gated.count {
            let x2 = halves[1].pointer[i], reference = gelu.pointer[i] * x2
            // The error of GELU itself (≤ 1e-6 of max(1, |GELU|)), scaled by the gating factor.
            worst = max(worst, abs(gated.pointer[i] - reference) / (max(1, abs(gelu.pointer[i])) * max(1, abs(x2))))
        }
        XCTAssertLessThan(worst, 1.5e-6, "gate vs gelu(x1)·x2")
        checkGradients("gdfnGate", inputs: [randomTensor([2, 10, 3, 5], seed: 32, low: -3, high: 3)]) { $0[0].gdfnGate() }
    }
    /// The inference kernel (depthwise 3×3 + gate in one pass) equals the composed ops, including one-pixel-wide
    /// and one-row maps; the feed-forward block gives the same output with and without gradient recording.
    func testFusedDepthwiseGateMatchesComposition() {
        for (b, c, h, w, withBias) in [(2, 7, 5, 6, true), (1, 4, 1, 9, false), (1, 3, 6, 1, true), (1, 5, 2, 2, false)] {
            let x = randomTensor([b, 2 * c, h, w], seed: 41)
            let weight = randomTensor([2 * c, 1, 3, 3], seed: 42)
            let bias = withBias ? randomTensor([2 * c], seed: 43) : nil
            let composed = noGrad { Tensor.conv2d(x, weight: weight, bias: bias, padding: 1, groups: 2 * c).gdfnGate() }
            let fused = Tensor.gdfnDepthwiseGate(x, weight: weight, bias: bias)
            XCTAssertEqual(fused.shape, [b, c, h, w])
            XCTAssertLessThan(relativeError(fused, composed), 1e-6, "\(b)×\(2 * c)×\(h)×\(w) bias \(withBias)")
        }
        let ffn = RestormerFeedForward(dim: 6, hiddenFeatures: 7, bias: true)
        let x = randomTensor([2, 6, 5, 7], seed: 44)
        let inference = noGrad { ffn(x) }
        let training = ffn(x)
        XCTAssertTrue(training.requiresGrad, "with trainable weights the composed, differentiable path runs")
        XCTAssertLessThan(relativeError(inference, training), 1e-6)
    }
}
