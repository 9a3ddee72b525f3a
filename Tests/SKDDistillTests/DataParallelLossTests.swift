// Why data-parallel training gathers the contrastive negatives: with the global batch's negatives, the mean of
// the K shard losses is the batch loss and the shards' gradients, scaled by 1/K, are the batch gradient; with
// each shard's own negatives they are not.

import SKDDistill
import SKDTensor
import SKDTestSupport
import XCTest

final class DataParallelLossTests: XCTestCase {
    private func rows(_ x: Tensor, _ start: Int, _ end: Int) -> Tensor { x.slice(axis: 0, start: start, end: end) }

    func testShardLossesWithGatheredNegativesAverageToTheBatchLoss() throws {
        let (b, k) = (4, 2)
        let student = randomTensor([b, 3, 5, 5], seed: 1), teacher = randomTensor([b, 3, 5, 5], seed: 2)
        let degraded = randomTensor([b, 3, 5, 5], seed: 3)
        for form in ContrastiveForm.allCases {
            student.requiresGrad = true
            student.zeroGrad()
            let whole = contrastiveLayerLoss(student: student, teacher: teacher, degraded: degraded, form: form, tau: 0.5)
            whole.backward()
            let wholeGrad = student.grad!.values

            var mean: Float = 0, ownNegatives: Float = 0
            var shardGrads: [Float] = []
            for r in 0..<k {
                let s = rows(student, r * b / k, (r + 1) * b / k).detached()
                s.requiresGrad = true
                let t = rows(teacher, r * b / k, (r + 1) * b / k)
                let loss = contrastiveLayerLoss(student: s, teacher: t, degraded: degraded, form: form, tau: 0.5)
                loss.backward()
                mean += loss.item / Float(k)
                shardGrads += s.grad!.values.map { $0 / Float(k) }
                ownNegatives += contrastiveLayerLoss(student: s.detached(), teacher: t, degraded: rows(degraded, r * b / k, (r + 1) * b / k),
                                                     form: form, tau: 0.5).item / Float(k)
            }
            XCTAssertEqual(mean, whole.item, accuracy: 1e-6 * abs(whole.item), "\(form): mean of the shard losses")
            for (x, y) in zip(shardGrads, wholeGrad) { XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-5 * abs(y), "\(form): gradient") }
            XCTAssertGreaterThan(abs(ownNegatives - whole.item), 1e-4 * abs(whole.item),
                                 "\(form): the shards' own negatives give another loss (the reason to gather them)")
        }
    }

    func testSingleProcessCommunicatorLeavesBuffersAndGathersItself() {
        let c = SingleProcessCommunicator()
        XCTAssertEqual([c.rank, c.size], [0, 1])
        var values: [Float] = [1, 2, 3]
        values.withUnsafeMutableBufferPointer { c.allReduceSum($0); c.broadcast($0, root: 0) }
        XCTAssertEqual(values, [1, 2, 3])
        let x = randomTensor([2, 3], seed: 4)
        XCTAssertEqual(c.allGather(x).values, x.values)
        XCTAssertEqual(c.allGather(x).shape, [2, 3])
    }
}
