import SKDDistill
import SKDTensor
import SKDTestSupport
import XCTest

final class CrossNetAttentionTests: XCTestCase {
    /// The tiled spatial branch equals the dense formula, forward and backward, for tiles that do and do not divide N.
    func testTiledSpatialAttentionEqualsDense() {
        for (shape, tile) in [([2, 5, 3, 7], 4), ([1, 6, 4, 4], 16), ([2, 3, 5, 5], 1), ([1, 8, 6, 5], 7)] {
            let s1 = randomTensor(shape, seed: 1), t1 = randomTensor(shape, seed: 2)
            let s2 = s1.copy(), t2 = t1.copy()
            for x in [s1, t1, s2, t2] { x.requiresGrad = true }
            let probe = randomTensor(shape, seed: 3)
            let tiled = spatialCrossAttention(student: s1, teacher: t1, tileRows: tile)
            let dense = spatialCrossAttentionDense(student: s2, teacher: t2)
            XCTAssertLessThan(relativeError(tiled, dense), 1e-5, "forward \(shape) tile \(tile)")
            (tiled * probe).sum().backward()
            (dense * probe).sum().backward()
            XCTAssertLessThan(relativeError(s1.grad!, s2.grad!), 1e-5, "student gradient \(shape) tile \(tile)")
            XCTAssertLessThan(relativeError(t1.grad!, t2.grad!), 1e-5, "teacher gradient \(shape) tile \(tile)")
        }
    }

    func testAttentionGradients() {
        let s = randomTensor([2, 5, 3, 3], seed: 4), t = randomTensor([2, 5, 3, 3], seed: 5)
        checkGradients("spatial tiled", inputs: [s, t]) { spatialCrossAttention(student: $0[0], teacher: $0[1], tileRows: 4) }
        checkGradients("channel", inputs: [s, t]) { channelCrossAttention(student: $0[0], teacher: $0[1]) }
    }

    func testLossGradients() {
        let x = randomTensor([2, 3, 4, 5], seed: 6), y = randomTensor([2, 3, 4, 5], seed: 7)
        checkGradients("gaussian kernel", inputs: [x, y]) { gaussianKernelLoss($0[0], $0[1], sigma: 0.7) }
        // |·| has a kink at 0: targets are shifted by 0.5 so central differences never cross it.
        let shifted = x.copy() + 0.5
        checkGradients("l1", inputs: [x]) { l1Loss($0[0], shifted) }
        let img = randomTensor([2, 3, 8, 8], seed: 8), teacher = randomTensor([2, 3, 8, 8], seed: 9)
        checkGradients("wavelet", inputs: [img]) { waveletLoss(student: $0[0], teacher: teacher, levels: 2) }
        let s = randomTensor([3, 4, 3, 3], seed: 10), t = randomTensor([3, 4, 3, 3], seed: 11), d = randomTensor([3, 4, 3, 3], seed: 12)
        let nearS = s.copy() - 0.5
        let farNegatives = Tensor.concat((0..<3).map { q in Tensor(shape: [1, 4, 3, 3], repeating: 3 + Float(q)) }, axis: 0)
        checkGradients("ratio", inputs: [s], options: GradCheckOptions(eps: 1e-3)) {
            contrastiveLayerLoss(student: $0[0], teacher: nearS, degraded: farNegatives, form: .ratio)
        }
        checkGradients("infonce", inputs: [s]) { contrastiveLayerLoss(student: $0[0], teacher: t, degraded: d, form: .infonce, tau: 0.5) }
    }

    /// The paper's τ = 1e-6 puts logits near 1e6: the loss and its gradient must stay finite.
    func testInfoNCEWithPaperTemperatureIsFinite() {
        let s = randomTensor([4, 3, 5, 5], seed: 13), t = randomTensor([4, 3, 5, 5], seed: 14), d = randomTensor([4, 3, 5, 5], seed: 15)
        s.requiresGrad = true
        let loss = contrastiveLayerLoss(student: s, teacher: t, degraded: d, form: .infonce, tau: 1e-6)
        XCTAssertTrue(loss.item.isFinite)
        loss.backward()
        XCTAssertTrue(s.grad!.values.allSatisfy(\.isFinite))
    }

    /// The Haar level is orthonormal: energy is preserved and a constant image has no details.
    func testHaarLevelIsOrthonormal() {
        let x = randomTensor([1, 2, 6, 4], seed: 16)
        let (low, details) = haarLevel(x)
        let energy = { (t: Tensor) in t.values.reduce(0) { $0 + Double($1) * Double($1) } }
        XCTAssertEqual(energy(low) + energy(details), energy(x), accuracy: 1e-4)
        let flat = Tensor(shape: [1, 1, 4, 4], repeating: 3)
        XCTAssertEqual(haarLevel(flat).details.values.map(abs).max()!, 0, accuracy: 1e-7)
        XCTAssertEqual(haarLevel(flat).low.values[0], 6, accuracy: 1e-6)
    }

    func testFeatureLossSwitchesAndThreshold() {
        let s = randomTensor([1, 4, 8, 8], seed: 17), t = randomTensor([1, 4, 8, 8], seed: 18)
        var options = FeatureLossOptions()
        options.spatialTokenThreshold = 63
        let skipped = featureLoss(projected: s, teacher: t, options: options)
        XCTAssertNil(skipped.spatial, "64 tokens are above a threshold of 63")
        XCTAssertNotNil(skipped.channel)
        options.spatialTokenThreshold = nil
        options.channelBranch = false
        let full = featureLoss(projected: s, teacher: t, options: options)
        XCTAssertNil(full.channel)
        XCTAssertEqual(full.total.item, full.plain.item + 0.5 * full.spatial!.item, accuracy: 1e-6)
    }
}
