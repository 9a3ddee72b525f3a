import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// The banded inference path of Restormer's transformer block (taken under `noGrad`) must compute the same function
/// as the composed ops (taken when the input requires a gradient), for both LayerNorm types, with and without
/// convolution biases, on sizes where the row bands do not divide the height and a band holds a single row.
final class FusedInferenceTests: XCTestCase {
    func testBandedBlockMatchesComposedOps() {
        let cases: [(dim: Int, heads: Int, hidden: Int, bias: Bool, type: LayerNormType, n: Int, h: Int, w: Int)] = [
            (6, 2, 7, true, .withBias, 2, 9, 11),
            (6, 2, 7, false, .biasFree, 1, 13, 5),
            (8, 1, 21, true, .biasFree, 1, 1, 7),
            (4, 2, 5, false, .withBias, 1, 7, 1),
            (16, 2, 42, true, .withBias, 1, 97, 160),
        ]
        let saved = RestormerTransformerBlock.inferenceBandBytes
        defer { RestormerTransformerBlock.inferenceBandBytes = saved }
        for (i, c) in cases.enumerated() {
            // Odd cases: bands of one or a few rows, so that halo rows are carried across many bands.
            RestormerTransformerBlock.inferenceBandBytes = i % 2 == 0 ? 4 << 20 : 3 * c.w * 4 * 4 * c.hidden
            let block = RestormerTransformerBlock(dim: c.dim, numHeads: c.heads, hiddenFeatures: c.hidden, bias: c.bias,
                                                  layerNormType: c.type)
            // Non-trivial norm parameters and biases, so that every term is exercised.
            for (k, p) in block.parameters().enumerated() {
                p.assign(randomTensor(p.shape, seed: UInt64(100 + 10 * i + k), low: -0.5, high: 0.5) + (p.rank == 1 ? 1 : 0))
            }
            let x = randomTensor([c.n, c.dim, c.h, c.w], seed: UInt64(i + 1), low: -2, high: 2)
            let fused = noGrad { block(x) }
            let input = x.copy()
            input.requiresGrad = true
            let composed = block(input)
            XCTAssertEqual(fused.shape, composed.shape)
            let error = fused.relativeError(to: composed.detached())
            XCTAssertLessThan(error, 1e-5, "case \(i) \(c): banded inference differs from the composed ops by \(error)")
        }
    }

    func testDRSformerBlockMatchesComposedOps() {
        let cases: [(dim: Int, heads: Int, bias: Bool, type: LayerNormType, n: Int, h: Int, w: Int)] = [
            (12, 2, true, .withBias, 2, 9, 11),
            (10, 1, false, .biasFree, 1, 13, 6),
            (8, 2, true, .biasFree, 1, 1, 5),
        ]
        let saved = DRSformerTransformerBlock.inferenceBandBytes
        defer { DRSformerTransformerBlock.inferenceBandBytes = saved }
        for (i, c) in cases.enumerated() {
            DRSformerTransformerBlock.inferenceBandBytes = i % 2 == 0 ? 4 << 20 : 3 * c.dim * c.w * 4 * 2
            let block = DRSformerTransformerBlock(dim: c.dim, numHeads: c.heads, ffnExpansionFactor: 2.66, bias: c.bias,
                                                  layerNormType: c.type)
            for (k, p) in block.parameters().enumerated() {
                p.assign(randomTensor(p.shape, seed: UInt64(300 + 10 * i + k), low: -0.5, high: 0.5) + (p.rank == 1 ? 1 : 0))
            }
            let x = randomTensor([c.n, c.dim, c.h, c.w], seed: UInt64(i + 7), low: -2, high: 2)
            let fused = noGrad { block(x) }
            let input = x.copy()
            input.requiresGrad = true
            let composed = block(input)
            XCTAssertEqual(fused.shape, composed.shape)
            let error = fused.relativeError(to: composed.detached())
            XCTAssertLessThan(error, 1e-5, "case \(i) \(c): fused inference differs from the composed ops by \(error)")
        }
    }
}
