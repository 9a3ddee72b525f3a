import CSKDKernels
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// The inference path of Uformer's LeWin block (window attention in a per-window scratch buffer, taken under
/// `noGrad`) must compute the same function as the composed ops (taken when the input requires a gradient): with
/// and without shift, modulator and q/kv bias, one and several heads, several images, windows reduced to the stage
/// side, and every variant of the C kernel (portable, AVX2 + FMA, AVX-512 where the CPU has them).
final class UformerInferenceTests: XCTestCase {
    func testWindowAttentionBlockMatchesComposedOps() {
        let cases: [(dim: Int, heads: Int, resolution: Int, window: Int, shift: Int, modulator: Bool, qkvBias: Bool,
                     n: Int, h: Int, w: Int)] = [
            (8, 1, 16, 4, 0, false, true, 1, 8, 12),
            (8, 2, 16, 4, 2, true, true, 2, 12, 8),
            (12, 3, 16, 4, 1, false, false, 1, 4, 4),
            (16, 2, 8, 8, 4, true, true, 1, 16, 24),
            (6, 2, 2, 4, 2, false, true, 2, 2, 4),     // stage side 2 ≤ window: window 2, no shift
            (32, 2, 16, 8, 4, false, true, 1, 8, 8),   // d = 16, n = 64: full AVX-512 rows
        ]
        let savedBand = UformerLeWinBlock.feedForwardBandBytes
        let savedLevel = skd_kernels_level()
        defer { skd_kernels_set_level(savedLevel); UformerLeWinBlock.feedForwardBandBytes = savedBand }
        for (i, c) in cases.enumerated() {
            let block = UformerLeWinBlock(dim: c.dim, resolution: c.resolution, numHeads: c.heads, window: c.window,
                                          shift: c.shift, qkvBias: c.qkvBias, modulator: c.modulator)
            block.eval()
            for (k, p) in block.parameters().enumerated() {
                p.assign(randomTensor(p.shape, seed: UInt64(500 + 10 * i + k), low: -0.5, high: 0.5) + (p.rank == 1 ? 1 : 0))
            }
            let x = randomTensor([c.n, c.h * c.w, c.dim], seed: UInt64(i + 3), low: -2, high: 2)
            let input = x.copy()
            input.requiresGrad = true
            let composed = block(input, height: c.h, width: c.w).detached()
            for level in 0...2 {
                skd_kernels_set_level(Int32(level))
                // LeFF bands of 1, 2 and all rows (the halo is 2 rows).
                let hidden = Int(Double(c.dim) * 4)
                UformerLeWinBlock.feedForwardBandBytes = ([1, 2, c.h][level] + 2) * hidden * c.w * 4
                let fused = noGrad { block(x, height: c.h, width: c.w) }
                XCTAssertEqual(fused.shape, composed.shape)
                let error = fused.relativeError(to: composed)
                XCTAssertLessThan(error, 2e-6, "case \(i) \(c), kernel level \(skd_kernels_level()): "
                                  + "inference differs from the composed ops by \(error)")
            }
        }
    }
}
