import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// The banded MSFN of DRSformer's inference path must compute the composed ops' function for every band size: bands
/// of one row (halo larger than the band), bands that do not divide the height, one band for the whole map, maps
/// shorter than the halo, with and without biases, several images.
final class DRSformerInferenceTests: XCTestCase {
    func testBandedFeedForwardMatchesComposedOps() {
        let cases: [(dim: Int, heads: Int, bias: Bool, type: LayerNormType, n: Int, h: Int, w: Int)] = [
            (12, 2, true, .withBias, 2, 23, 11),
            (10, 1, false, .biasFree, 1, 13, 6),
            (8, 2, true, .biasFree, 1, 3, 5),
            (8, 1, true, .withBias, 1, 1, 9),
        ]
        let saved = DRSformerTransformerBlock.feedForwardBandBytes
        defer { DRSformerTransformerBlock.feedForwardBandBytes = saved }
        for (i, c) in cases.enumerated() {
            let block = DRSformerTransformerBlock(dim: c.dim, numHeads: c.heads, ffnExpansionFactor: 2.66, bias: c.bias,
                                                  layerNormType: c.type)
            for (k, p) in block.parameters().enumerated() {
                p.assign(randomTensor(p.shape, seed: UInt64(700 + 10 * i + k), low: -0.5, high: 0.5) + (p.rank == 1 ? 1 : 0))
            }
            let x = randomTensor([c.n, c.dim, c.h, c.w], seed: UInt64(i + 11), low: -2, high: 2)
            let input = x.copy()
            input.requiresGrad = true
            let composed = block(input).detached()
            let c2 = block.ffn.projectIn.weight.shape[0]
            // Rows per band (before the 8 halo rows): 1, 2, 5 and the whole map.
            for rows in [1, 2, 5, c.h] {
                DRSformerTransformerBlock.feedForwardBandBytes = (rows + 8) * c2 * c.w * 4
                let fused = noGrad { block(x) }
                let error = fused.relativeError(to: composed)
                XCTAssertLessThan(error, 1e-5, "case \(i) \(c), \(rows)-row bands: inference differs by \(error)")
            }
        }
    }
}
