// Restormer against the official PyTorch implementation (golden files written by swz30/Restormer's
// `restormer_arch.py`), its published statistics, and finite differences.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class RestormerParityTests: XCTestCase {
    /// Tensors in a golden file that are not parameters.
    private func isReference(_ name: String) -> Bool {
        name == "input" || name == "output" || name.hasPrefix("probe") || name.hasPrefix("tap.") || name.hasPrefix("grad.")
    }

    private func compare(_ label: String, _ got: Tensor?, _ want: Tensor?, file: StaticString = #filePath, line: UInt = #line) {
        guard let got, let want else {
            XCTFail("\(label): missing (\(got == nil ? "ours" : "reference"))", file: file, line: line)
            return
        }
        XCTAssertEqual(got.shape, want.shape, "\(label): shape", file: file, line: line)
        guard got.count == want.count else { return }
        let error = relativeError(got, want)
        print(String(format: "  %-48@ rel. error %.3e", label as NSString, error))
        XCTAssertLessThanOrEqual(error, 1e-4, "\(label): relative error \(error)", file: file, line: line)
    }

    private func checkParity(_ golden: String) throws {
        guard let url = try referenceFile("golden/\(golden)") else { return }
        let file = try SafeTensors.read(url)
        let configJSON = try XCTUnwrap(file.metadata["config"], "\(golden): no config in metadata")
        let config = try JSONDecoder().decode(RestormerConfig.self, from: Data(configJSON.utf8))
        let model = Restormer(config: config)
        let parameters = file.tensors.filter { !isReference($0.key) }
        try model.load(parameters, strict: true)
        model.eval()

        let input = try XCTUnwrap(file.tensors["input"])
        let probe = try XCTUnwrap(file.tensors["probe"])
        input.requiresGrad = true
        let taps = FeatureTaps()
        let output = model.forward(input, taps: taps)
        print("\(golden):")
        compare("output", output, file.tensors["output"])

        let tapList = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(file.metadata["taps"]).utf8))
        XCTAssertEqual(Set(tapList), Set(model.tapNames), "the model's taps are the reference's")
        for name in tapList { compare("tap.\(name)", taps[name], file.tensors["tap.\(name)"]) }

        (output * probe).sum().backward()
        compare("grad.input", input.grad, file.tensors["grad.input"])
        var compared = 0
        for (name, parameter) in model.namedParameters() {
            compare("grad.\(name)", parameter.grad, file.tensors["grad.\(name)"])
            compared += 1
        }
        let referenceGradients = file.tensors.keys.filter { $0.hasPrefix("grad.") && $0 != "grad.input" }.count
        XCTAssertEqual(compared, referenceGradients, "every parameter gradient of the reference is compared")
    }

    func testParityWithBiasLayerNorm() throws { try checkParity("restormer_tiny.safetensors") }

    func testParityBiasFreeLayerNormWithConvBias() throws { try checkParity("restormer_tiny_biasfree.safetensors") }

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
        for type in [RestormerLayerNormType.withBias, .biasFree] {
            let block = RestormerTransformerBlock(dim: 6, numHeads: 2, hiddenFeatures: 7, bias: type == .biasFree, layerNormType: type)
            var rng = SKDRandom(seed: 11)
            for (_, p) in block.namedParameters() { p.assign(p + Tensor.uniform(p.shape, low: -0.3, high: 0.3, using: &rng)) }
            let x = randomTensor([2, 6, 5, 3], seed: 12)
            checkGradients("block \(type)", inputs: [x, block.attn.temperature, block.norm1.body.weight, block.attn.qkv.weight,
                                                   block.ffn.dwconv.weight, block.ffn.project_out.weight]) { block($0[0]) }
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

    /// The GDFN gate equals gelu(x₁)·x₂ on the two channel halves.
    func testGateMatchesComposition() {
        let x = randomTensor([2, 10, 3, 5], seed: 31, low: -3, high: 3)
        let halves = x.chunk(2, axis: 1)
        XCTAssertLessThan(relativeError(x.gdfnGate(), halves[0].gelu() * halves[1]), 1e-6)
        checkGradients("gdfnGate", inputs: [x]) { $0[0].gdfnGate() }
    }
}
