// The cheap-SKD-step paths against what they replace: the checkpointed teacher encoder φ(S) against the recorded
// forward, and the fused ratio contrastive loss against its composed ops.

import Foundation
import SKDDistill
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class CheckpointedEncoderTests: XCTestCase {
    private func teachers() -> [any TappedModel] {
        ParameterInit.seed(31)
        var config = RestormerConfig()
        config.dim = 8; config.numBlocks = [2, 1, 2, 1]; config.numRefinementBlocks = 1; config.heads = [1, 2, 2, 4]
        let restormer = Restormer(config: config)
        ParameterInit.seed(32)
        let drs = DRSformer(config: DRSformerConfig(dim: 8, numBlocks: [1, 2, 1, 1], heads: [1, 1, 2, 2], mefc: true))
        return [restormer, drs]
    }

    /// φ(S) checkpointed block by block (whole batch, and one sample per recomputation) gives the taps and the
    /// gradient into the images of the plain recorded forward; the frozen teacher's parameters get no gradient.
    func testCheckpointedFeaturesAndGradientsMatchTheRecordedForward() {
        var rng = SKDRandom(seed: 33)
        // 3 samples at 24×16: uneven batch slices and a non-square grid.
        let images = Tensor.uniform([3, 3, 24, 16], low: -1, high: 1, using: &rng)
        for teacher in teachers() {
            teacher.freeze()
            teacher.eval()
            let taps = ["encoder_level1", "encoder_level2", "encoder_level3"]
            var results: [(features: [Tensor], grad: Tensor)] = []
            for budget in [nil, 1 << 30, 1] as [Int?] {
                let phi = TeacherEncoderFeatures(teacher: teacher, taps: taps, recomputeBytes: budget)
                let x = images.copy()
                x.requiresGrad = true
                let features = phi.features(x)
                var objective: Tensor? = nil
                for (l, f) in features.enumerated() {
                    let probe = randomTensor(f.shape, seed: UInt64(40 + l))
                    let term = (f * probe).sum()
                    objective = objective.map { $0 + term } ?? term
                }
                objective!.backward()
                results.append((features.map { $0.detached() }, x.grad!))
            }
            let name = "\(type(of: teacher))"
            for k in 1..<results.count {
                for (f, f0) in zip(results[k].features, results[0].features) {
                    XCTAssertEqual(f.shape, f0.shape, name)
                    XCTAssertLessThan(f.relativeError(to: f0), 1e-5, "\(name) budget case \(k): features")
                }
                XCTAssertLessThan(results[k].grad.relativeError(to: results[0].grad), 1e-4, "\(name) budget case \(k): gradient")
            }
            XCTAssertTrue(teacher.parameters().allSatisfy { $0.grad == nil }, "\(name): the frozen teacher got gradients")
        }
    }

    /// Finite differences through the checkpointed encoder, one sample per recomputation.
    func testCheckpointedEncoderGradients() {
        let teacher = teachers()[0]
        teacher.freeze()
        teacher.eval()
        let phi = TeacherEncoderFeatures(teacher: teacher, taps: ["encoder_level2"], recomputeBytes: 1)
        let images = randomTensor([2, 3, 8, 8], seed: 34)
        checkGradients("checkpointed φ", inputs: [images], options: GradCheckOptions(eps: 1e-2, rtol: 3e-2, atol: 3e-3)) {
            phi.features($0[0])[0]
        }
    }
}

final class ContrastiveRatioTests: XCTestCase {
    /// The composed form the fused op replaces.
    private func composed(_ s: Tensor, _ t: Tensor, _ neg: Tensor, eps: Float) -> Tensor {
        let n = neg.shape[0]
        let dpos = (s - t).abs().mean(axis: 1)
        var dneg: Tensor? = nil
        for q in 0..<n {
            let d = (s - neg.slice(axis: 0, start: q, end: q + 1)).abs().mean(axis: 1)
            dneg = dneg.map { $0 + d } ?? d
        }
        return (dpos / (dneg! * (1 / Float(n)) + eps)).mean()
    }

    /// Awkward shapes (D not a multiple of 16, D above one 4096 block, one negative, more negatives than samples)
    /// and exact ties (s = t in places): value and all three gradients equal the composed ops'.
    func testFusedRatioEqualsTheComposedOps() {
        for (b, d, n) in [(3, 37, 5), (1, 4100, 1), (2, 16, 7), (4, 5, 2)] {
            let s = randomTensor([b, d], seed: 50), t = randomTensor([b, d], seed: 51), neg = randomTensor([n, d], seed: 52)
            // Ties: the derivative of |x| at 0 is 0 in both.
            for j in stride(from: 0, to: d, by: 3) { t.pointer[j] = s.pointer[j] }
            neg.pointer[1] = s.pointer[1]
            var values: [Float] = [], grads: [[Tensor]] = []
            for fused in [false, true] {
                for x in [s, t, neg] { x.requiresGrad = true; x.zeroGrad() }
                let loss = fused ? contrastiveRatioLoss(student: s, teacher: t, degraded: neg) : composed(s, t, neg, eps: 1e-7)
                values.append(loss.item)
                (loss * 1.7).backward()
                grads.append([s.grad!, t.grad!, neg.grad!])
            }
            XCTAssertEqual(values[1], values[0], accuracy: 1e-6 * abs(values[0]), "B \(b) D \(d) N \(n)")
            for (k, (g1, g0)) in zip(grads[1], grads[0]).enumerated() {
                XCTAssertLessThan(g1.relativeError(to: g0), 1e-5, "B \(b) D \(d) N \(n): gradient \(k)")
            }
        }
    }

    /// Finite differences of the fused op into student, positives and negatives.
    func testFusedRatioGradients() {
        let s = randomTensor([3, 20], seed: 60), t = randomTensor([3, 20], seed: 61), neg = randomTensor([4, 20], seed: 62)
        // Keep every |s − t| and |s − neg| away from the kink at 0, where central differences straddle it.
        for other in [t, neg] {
            for i in 0..<other.shape[0] * 20 {
                for k in 0..<3 {
                    let sj = s.pointer[k * 20 + i % 20]
                    if abs(other.pointer[i] - sj) < 0.02 { other.pointer[i] = sj + (other.pointer[i] >= sj ? 0.02 : -0.02) }
                }
            }
        }
        checkGradients("contrastiveRatioLoss", inputs: [s, t, neg], options: GradCheckOptions(eps: 1e-3, rtol: 3e-2, atol: 1e-3)) {
            contrastiveRatioLoss(student: $0[0], teacher: $0[1], degraded: $0[2])
        }
    }

    /// Data-parallel shapes reach the fused op through `contrastiveLayerLoss`: N negatives ≠ B samples, NCHW features.
    func testLayerLossTakesTheFusedPath() {
        let s = randomTensor([2, 3, 4, 4], seed: 70), t = randomTensor([2, 3, 4, 4], seed: 71), neg = randomTensor([5, 3, 4, 4], seed: 72)
        let viaLayer = contrastiveLayerLoss(student: s, teacher: t, degraded: neg, form: .ratio).item
        let plain = composed(s.reshaped([2, 48]), t.reshaped([2, 48]), neg.reshaped([5, 48]), eps: 1e-7).item
        XCTAssertEqual(viaLayer, plain, accuracy: 1e-6)
    }
}

final class GaussianKernelTests: XCTestCase {
    /// The composition the fused op replaces.
    private func composed(_ x: Tensor, _ y: Tensor, sigma: Float) -> Tensor {
        let meanSquare = (x - y).square().mean(axis: 1)
        return (1 - (meanSquare * (-1 / (2 * sigma * sigma))).exp()).mean()
    }

    /// Awkward shapes (odd sides, one channel, one sample) and σ ≠ 1: value and both gradients equal the composed ops'.
    func testFusedGaussianKernelEqualsTheComposedOps() {
        for (shape, sigma) in [([2, 5, 3, 7], Float(1)), ([1, 1, 4, 4], 0.5), ([3, 33, 1, 5], 2)] as [([Int], Float)] {
            let x = randomTensor(shape, seed: 80), y = randomTensor(shape, seed: 81)
            var values: [Float] = [], grads: [[Tensor]] = []
            for fused in [false, true] {
                for t in [x, y] { t.requiresGrad = true; t.zeroGrad() }
                let loss = fused ? gaussianKernelLoss(x, y, sigma: sigma) : composed(x, y, sigma: sigma)
                values.append(loss.item)
                (loss * 0.7).backward()
                grads.append([x.grad!, y.grad!])
            }
            XCTAssertEqual(values[1], values[0], accuracy: 1e-6 * max(1, abs(values[0])), "\(shape)")
            for (k, (g1, g0)) in zip(grads[1], grads[0]).enumerated() {
                XCTAssertLessThan(g1.relativeError(to: g0), 1e-5, "\(shape): gradient \(k)")
            }
            // Only x requiring a gradient (the distillation case: the teacher feature has none).
            y.requiresGrad = false; x.zeroGrad()
            gaussianKernelLoss(x, y, sigma: sigma).backward()
            XCTAssertLessThan(x.grad!.relativeError(to: grads[0][0] * (1 / 0.7)), 1e-5, "\(shape): x only")
        }
    }

    func testFusedGaussianKernelGradients() {
        let x = randomTensor([2, 3, 3, 5], seed: 82), y = randomTensor([2, 3, 3, 5], seed: 83)
        checkGradients("gaussianKernelLoss", inputs: [x, y], options: GradCheckOptions(eps: 1e-2, rtol: 3e-2, atol: 1e-4)) {
            gaussianKernelLoss($0[0], $0[1], sigma: 0.8)
        }
    }
}
