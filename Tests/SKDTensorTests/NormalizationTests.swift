import SKDTensor
import SKDTestSupport
import XCTest

final class NormalizationTests: XCTestCase {
    /// Restormer's LayerNorm computed pixel by pixel in Double: `to_3d`, normalise over channels, `to_4d`.
    private func naiveLayerNormChannels(_ x: Tensor, _ w: Tensor, _ b: Tensor?, eps: Double = 1e-5) -> [Float] {
        let (n, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let xv = x.values, wv = w.values, bv = b?.values
        var out = [Float](repeating: 0, count: x.count)
        for img in 0..<n {
            for p in 0..<hw {
                var mean = 0.0
                for ch in 0..<c { mean += Double(xv[(img * c + ch) * hw + p]) }
                mean /= Double(c)
                var variance = 0.0
                for ch in 0..<c { let d = Double(xv[(img * c + ch) * hw + p]) - mean; variance += d * d }
                variance /= Double(c)
                let rstd = 1 / (variance + eps).squareRoot()
                for ch in 0..<c {
                    let i = (img * c + ch) * hw + p
                    let xi = Double(xv[i])
                    if let bv {
                        out[i] = Float((xi - mean) * rstd * Double(wv[ch]) + Double(bv[ch]))
                    } else {
                        out[i] = Float(xi * rstd * Double(wv[ch]))
                    }
                }
            }
        }
        return out
    }

    private func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        var worst: Float = 0, at = 0
        for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > worst { worst = abs(a[i] - b[i]); at = i }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(message): element \(at): \(a[at]) vs \(b[at])", file: file, line: line)
    }

    func testLayerNormChannelsMatchesNaiveReference() {
        let x = randomTensor([2, 5, 3, 4], seed: 11, low: -2, high: 3)
        let w = randomTensor([5], seed: 12, low: 0.5, high: 1.5), b = randomTensor([5], seed: 13)
        let withBias = x.layerNormChannels(weight: w, bias: b)
        XCTAssertEqual(withBias.shape, [2, 5, 3, 4])
        assertClose(withBias.values, naiveLayerNormChannels(x, w, b), tolerance: 1e-5, "WithBias")
        let biasFree = x.layerNormChannels(weight: w, bias: nil)
        assertClose(biasFree.values, naiveLayerNormChannels(x, w, nil), tolerance: 1e-5, "BiasFree")
        // The NCHW kernel must agree with the token LayerNorm applied after to_3d (the way Restormer computes it).
        let viaTokens = x.permuted([0, 2, 3, 1]).layerNorm(weight: w, bias: b).permuted([0, 3, 1, 2])
        assertClose(withBias.values, viaTokens.values, tolerance: 1e-5, "WithBias vs token LayerNorm")
    }

    func testLayerNormChannelsHandComputedPixel() {
        // One pixel with channels (1, 2, 3, 6): mean 3, population variance (4 + 1 + 0 + 9)/4 = 3.5.
        let x = Tensor(shape: [1, 4, 1, 1], values: [1, 2, 3, 6])
        let w = Tensor(shape: [4], values: [1, 2, 1, 1]), b = Tensor(shape: [4], values: [0, 0, 0, 10])
        let r = 1 / Float(3.5 + 1e-5).squareRoot()
        let y = x.layerNormChannels(weight: w, bias: b).values
        XCTAssertEqual(y[0], -2 * r, accuracy: 1e-6)
        XCTAssertEqual(y[1], -1 * r * 2, accuracy: 1e-6)
        XCTAssertEqual(y[2], 0, accuracy: 1e-6)
        XCTAssertEqual(y[3], 3 * r + 10, accuracy: 1e-5)
        // BiasFree does not centre the numerator but still uses the variance about the mean.
        let z = x.layerNormChannels(weight: w, bias: nil).values
        assertClose(z, [1 * r, 4 * r, 3 * r, 6 * r], tolerance: 1e-6, "BiasFree pixel")
    }

    func testLayerNormChannelsManyBlocksAndLargeMean() {
        // Enough pixels for several blocks per image (and a ragged last block), split across cores.
        let x = randomTensor([2, 7, 37, 41], seed: 14, low: -1, high: 1)
        let w = randomTensor([7], seed: 15), b = randomTensor([7], seed: 16)
        assertClose(x.layerNormChannels(weight: w, bias: b).values, naiveLayerNormChannels(x, w, b), tolerance: 2e-5, "blocks")
        assertClose(x.layerNormChannels(weight: w, bias: nil).values, naiveLayerNormChannels(x, w, nil), tolerance: 2e-5, "blocks BiasFree")
        // A mean far from zero next to a small spread: E[x²] − E[x]² would cancel catastrophically here (σ² ≈ 3e-5
        // against x² ≈ 2.5e5). What remains is the float resolution of a mean near 500 (≈ 3e-5, i.e. 0.5% of σ).
        let shifted = x * 0.01 + 500
        assertClose(shifted.layerNormChannels(weight: w, bias: b).values, naiveLayerNormChannels(shifted, w, b),
                    tolerance: 5e-3, "large mean")
        let tokens = shifted.permuted([0, 2, 3, 1])
        assertClose(tokens.layerNorm(weight: w, bias: b).permuted([0, 3, 1, 2]).values, naiveLayerNormChannels(shifted, w, b),
                    tolerance: 5e-3, "token LayerNorm, large mean")
    }

    func testLayerNormChannelsGradients() {
        for shape in [[2, 5, 3, 5], [1, 7, 5, 3], [1, 3, 40, 41]] {
            let c = shape[1]
            let x = randomTensor(shape, seed: 21, low: -2, high: 2)
            let w = randomTensor([c], seed: 22, low: 0.5, high: 1.5), b = randomTensor([c], seed: 23)
            checkGradients("layerNormChannels WithBias \(shape)", inputs: [x, w, b]) {
                $0[0].layerNormChannels(weight: $0[1], bias: $0[2])
            }
            checkGradients("layerNormChannels BiasFree \(shape)", inputs: [x, w]) {
                $0[0].layerNormChannels(weight: $0[1], bias: nil)
            }
        }
    }

    func testLayerNormChannelsParameterOnlyGradients() {
        // When only the parameters require gradients the input path is skipped; the parameter gradients
        // must not change.
        let x = randomTensor([2, 5, 3, 5], seed: 24), w = randomTensor([5], seed: 25), b = randomTensor([5], seed: 26)
        let g = randomTensor([2, 5, 3, 5], seed: 27)
        for bias in [b, nil] {
            w.requiresGrad = true; b.requiresGrad = true; x.requiresGrad = true
            x.layerNormChannels(weight: w, bias: bias).backward(g)
            let fullW = w.grad!.values, fullB = bias?.grad?.values
            w.zeroGrad(); b.zeroGrad(); x.zeroGrad()
            x.requiresGrad = false
            x.layerNormChannels(weight: w, bias: bias).backward(g)
            assertClose(w.grad!.values, fullW, tolerance: 1e-6, "weight gradient")
            if let fullB { assertClose(bias!.grad!.values, fullB, tolerance: 1e-6, "bias gradient") }
            w.zeroGrad(); b.zeroGrad()
        }
    }

    func testTokenLayerNormForwardAndGradients() {
        let x = randomTensor([3, 4, 7], seed: 31, low: -2, high: 2)
        let w = randomTensor([7], seed: 32, low: 0.5, high: 1.5), b = randomTensor([7], seed: 33)
        let y = x.layerNorm(weight: w, bias: b).values, xv = x.values, wv = w.values, bv = b.values
        for row in 0..<12 {
            let r = xv[(row * 7)..<(row * 7 + 7)].map(Double.init)
            let mean = r.reduce(0, +) / 7
            let variance = r.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 7
            for j in 0..<7 {
                let expected = (r[j] - mean) / (variance + 1e-5).squareRoot() * Double(wv[j]) + Double(bv[j])
                XCTAssertEqual(y[row * 7 + j], Float(expected), accuracy: 1e-5)
            }
        }
        checkGradients("layerNorm w b", inputs: [x, w, b]) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        checkGradients("layerNorm w", inputs: [x, w]) { $0[0].layerNorm(weight: $0[1], bias: nil) }
        checkGradients("layerNorm b", inputs: [x, b]) { $0[0].layerNorm(weight: nil, bias: $0[1]) }
        checkGradients("layerNorm plain", inputs: [randomTensor([5, 5], seed: 34)]) { $0[0].layerNorm(weight: nil, bias: nil) }
        // More rows than one backward block holds, so the per-block parameter partials are summed.
        let many = randomTensor([2, 400, 7], seed: 35)
        checkGradients("layerNorm many rows", inputs: [many, w, b]) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
    }

    func testL2Normalized() {
        let x = Tensor(shape: [3, 2], values: [3, 4, 0, 0, -1e-14, 0])
        let y = x.l2Normalized().values
        XCTAssertEqual(y[0], 0.6, accuracy: 1e-7)
        XCTAssertEqual(y[1], 0.8, accuracy: 1e-7)
        XCTAssertEqual(Array(y[2...3]), [0, 0])
        // ‖x‖ < eps: divided by eps, as F.normalize does.
        XCTAssertEqual(y[4], -0.01, accuracy: 1e-8)

        let z = randomTensor([4, 3, 9], seed: 41)
        let zn = z.l2Normalized().values, zv = z.values
        for row in 0..<12 {
            let norm = zv[(row * 9)..<(row * 9 + 9)].map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            for j in 0..<9 { XCTAssertEqual(zn[row * 9 + j], Float(Double(zv[row * 9 + j]) / norm), accuracy: 1e-6) }
        }
        checkGradients("l2Normalized", inputs: [z]) { $0[0].l2Normalized() }
        checkGradients("l2Normalized long rows", inputs: [randomTensor([3, 37], seed: 42)]) { $0[0].l2Normalized() }
        // Every row below the floor: the op is x / eps, gradient g / eps.
        checkGradients("l2Normalized clamped", inputs: [randomTensor([2, 5], seed: 43, low: -0.1, high: 0.1)]) {
            $0[0].l2Normalized(eps: 2)
        }
    }
}
