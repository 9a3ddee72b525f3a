// DRSformer against the official PyTorch implementation (golden/drsformer_tiny.safetensors): output, every tap,
// the input gradient and every parameter gradient; plus the official statistics of the presets, the MEFC switch,
// and finite-difference checks of one sparse transformer block and one MEFC subnet.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class DRSformerParityTests: XCTestCase {
    /// The reference file's tensors that are not parameters.
    private static func isParameterName(_ name: String) -> Bool {
        !(name == "input" || name == "output" || name.hasPrefix("probe") || name.hasPrefix("tap.") || name.hasPrefix("grad."))
    }

    /// Parameters and MACs of the presets at 1×3×512×512 against the figures measured on the official code.
    func testPresetStatisticsMatchOfficialFigures() throws {
        let official: [(String, Double, Double)] = [("drsformer", 33.66e6, 971.9e9), ("drsformer-s", 7.65e6, 155.3e9)]
        for (name, parameters, macs) in official {
            let config = try XCTUnwrap(DRSformerConfig.preset(name), name)
            let model = DRSformer(config: config)
            let p = Double(model.parameterCount), m = Double(model.multiplyAccumulates(height: 512, width: 512))
            print(String(format: "%@: %.3f M parameters, %.2f GMAC at 512×512", name, p / 1e6, m / 1e9))
            XCTAssertLessThanOrEqual(abs(p - parameters) / parameters, 0.01, "\(name) parameters \(p)")
            XCTAssertLessThanOrEqual(abs(m - macs) / macs, 0.01, "\(name) MACs \(m)")
        }
        XCTAssertNil(DRSformerConfig.preset("drsformer-xl"))
    }

    /// The exact counts for the tiny golden configuration: parameters from the file, MACs by hand.
    func testTinyStatisticsAreExact() throws {
        let model = DRSformer(config: DRSformerConfig(dim: 8, numBlocks: [1, 1, 1, 2]))
        // Number of parameter elements in golden/drsformer_tiny.safetensors.
        XCTAssertEqual(model.parameterCount, 419_510)
        // One level-1 block at 16×16, dim 8, 1 head, hidden 21: convolutions plus q·kᵀ and four attn·v (8² each).
        let block = model.encoderLevel1[0]
        let hw = 16 * 16
        let attention = (8 * 24 + 24 * 9 + 8 * 8) * hw + 5 * 64 * hw
        let ffn = (8 * 42 + 42 * 9 + 42 * 25 + 21 * 2 * 9 + 21 * 2 * 25 + 42 * 8) * hw
        XCTAssertEqual(block.multiplyAccumulates(height: 16, width: 16), attention + ffn)
    }

    /// Without MEFC the official model (DRSformer_arch_200L+SPA.py) has neither `encoder_level0` nor `refinement`.
    func testWithoutMEFCLeavesTheSubnetsOut() {
        let config = DRSformerConfig(dim: 8, numBlocks: [1, 1, 1, 1], mefc: false)
        let model = DRSformer(config: config)
        let names = model.namedParameters().map { $0.0 }
        XCTAssertFalse(names.contains { $0.hasPrefix("encoder_level0.") || $0.hasPrefix("refinement.") })
        XCTAssertEqual(model.tapNames, ["patch_embed", "encoder_level1", "encoder_level2", "encoder_level3", "latent",
                                        "decoder_level3", "decoder_level2", "decoder_level1"])
        let withMEFC = DRSformer(config: DRSformerConfig(dim: 8, numBlocks: [1, 1, 1, 1]))
        XCTAssertGreaterThan(withMEFC.parameterCount, model.parameterCount)
        var rng = SKDRandom(seed: 7)
        let x = Tensor.uniform([1, 3, 8, 16], low: -1, high: 1, using: &rng)
        let taps = FeatureTaps()
        let y = noGrad { model.forward(x, taps: taps) }
        XCTAssertEqual(y.shape, [1, 3, 8, 16])
        XCTAssertEqual(taps.order, model.tapNames)
        XCTAssertTrue(y.values.allSatisfy { $0.isFinite })
    }

    func testConfigDecodingUsesOfficialNamesAndDefaults() throws {
        let json = #"{"arch": "drsformer", "dim": 16, "LayerNorm_type": "BiasFree", "mefc": false}"#
        let config = try JSONDecoder().decode(DRSformerConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config, DRSformerConfig(dim: 16, layerNormType: .biasFree, mefc: false))
        let roundTrip = try JSONDecoder().decode(DRSformerConfig.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(roundTrip, config)
        XCTAssertEqual(try JSONDecoder().decode(DRSformerConfig.self, from: Data("{}".utf8)), DRSformerConfig())
    }

    func testTopKSizesFollowPythonInt() {
        XCTAssertEqual(DRSformerAttention.topKSizes(channelsPerHead: 8), [4, 5, 6, 6])
        XCTAssertEqual(DRSformerAttention.topKSizes(channelsPerHead: 48), [24, 32, 36, 38])
        XCTAssertEqual(DRSformerAttention.topKSizes(channelsPerHead: 15), [7, 10, 11, 12])
        XCTAssertEqual(DRSformerAttention.topKSizes(channelsPerHead: 3), [1, 2, 2, 2])
    }

    /// One sparse transformer block (BiasFree, biased convolutions, 2 heads of 4 channels: top-k 2, 2, 3, 3) on an
    /// odd-sized input, for four random draws of parameters and input.
    ///
    /// The block is only piecewise smooth: ReLUs in the MSFN, and top-k masks that switch when two scores swap
    /// places. A central difference straddling such a point is wrong, so each probed element is accepted when the
    /// analytic derivative matches the central difference or one of the one-sided differences (the side without
    /// the switch); a backward-pass error fails all three. At most a quarter of the elements may need a
    /// one-sided difference.
    func testTransformerBlockGradients() {
      for seed in UInt64(1)...UInt64(4) {
        ParameterInit.seed(seed)
        let block = DRSformerTransformerBlock(dim: 8, numHeads: 2, ffnExpansionFactor: 1.5, bias: true,
                                              layerNormType: .biasFree)
        var rng = SKDRandom(seed: seed)
        for (_, p) in block.namedParameters() {
            p.assign(p + Tensor.uniform(p.shape, low: -0.3, high: 0.3, using: &rng))
        }
        let x = Tensor.uniform([2, 8, 5, 3], low: -1, high: 1, using: &rng)
        let inputs = [x] + block.namedParameters().map { $0.1 }
        checkPiecewiseGradients("DRSformer block seed \(seed)", inputs: inputs) { block(x) }
      }
    }

    /// The finite-difference check described on `testTransformerBlockGradients`, for `f` of the given inputs.
    private func checkPiecewiseGradients(_ name: String, inputs: [Tensor], eps: Float = 1e-3,
                                         file: StaticString = #filePath, line: UInt = #line, _ f: () -> Tensor) {
        var rng = SKDRandom(seed: 0xD125)
        for t in inputs { t.requiresGrad = true; t.zeroGrad() }
        let out = f()
        let probe = Tensor.uniform(out.shape, low: -1, high: 1, using: &rng)
        (out * probe).sum().backward()
        func objective() -> Double {
            let y = noGrad { f() }
            var acc = 0.0
            for i in 0..<y.count { acc += Double(y.pointer[i]) * Double(probe.pointer[i]) }
            return acc
        }
        let base = objective()
        // Whether `analytic` matches the central difference with step `h`, or any of central and one-sided ones.
        func match(_ t: Tensor, _ i: Int, _ analytic: Double, step h: Float) -> (central: Bool, any: Bool, detail: String) {
            let saved = t.pointer[i]
            t.pointer[i] = saved + h
            let plus = objective()
            t.pointer[i] = saved - h
            let minus = objective()
            t.pointer[i] = saved
            let differences = [(plus - minus) / Double(2 * h), (plus - base) / Double(h), (base - minus) / Double(h)]
            let ok = differences.map { abs(analytic - $0) <= 5e-3 + 3e-2 * abs($0) }
            return (ok[0], ok.contains(true), "step \(h): central \(differences[0]), forward \(differences[1]), backward \(differences[2])")
        }
        var probed = 0, oneSided = 0
        for (index, t) in inputs.enumerated() {
            guard let grad = t.grad else { XCTFail("\(name): input \(index) got no gradient", file: file, line: line); continue }
            for i in stride(from: 0, to: t.count, by: max(1, t.count / 24)) {
                let analytic = Double(grad.pointer[i])
                probed += 1
                let first = match(t, i, analytic, step: eps)
                if first.central { continue }
                oneSided += 1
                if first.any { continue }
                // Switch points on both sides (e.g. a bias moving a whole channel across ReLU kinks): a smaller step
                // leaves at most one of them inside.
                let second = match(t, i, analytic, step: eps / 4)
                if second.any { continue }
                XCTFail("\(name): input \(index) \(t.shape), element \(i): analytic \(analytic); \(first.detail); \(second.detail)",
                        file: file, line: line)
            }
        }
        XCTAssertLessThanOrEqual(oneSided * 4, probed, "\(name): \(oneSided) of \(probed) elements needed a one-sided difference",
                                 file: file, line: line)
        print("\(name): \(probed) elements, \(oneSided) matched one-sided")
    }

    /// One MEFC subnet (steps 2) with two samples, so the per-sample operation weights differ; ReLUs make it
    /// piecewise smooth, hence the same check as the transformer block.
    func testSubnetGradients() {
      for seed in UInt64(1)...UInt64(4) {
        ParameterInit.seed(seed)
        let subnet = DRSformerSubnet(dim: 3, layerCount: 1, steps: 2)
        var rng = SKDRandom(seed: seed)
        for (_, p) in subnet.namedParameters() {
            p.assign(p + Tensor.uniform(p.shape, low: -0.2, high: 0.2, using: &rng))
        }
        let x = Tensor.uniform([2, 3, 5, 4], low: -1, high: 1, using: &rng)
        let inputs = [x] + subnet.namedParameters().map { $0.1 }
        checkPiecewiseGradients("DRSformer MEFC seed \(seed)", inputs: inputs) { subnet(x) }
      }
    }
}
