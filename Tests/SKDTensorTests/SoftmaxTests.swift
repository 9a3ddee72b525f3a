import SKDTensor
import SKDTestSupport
import XCTest

final class SoftmaxTests: XCTestCase {
    /// Softmax rows computed in Double with the standard library's exp.
    private func naiveSoftmax(_ x: Tensor) -> [Double] {
        let n = x.shape.last!, v = x.values.map(Double.init)
        var out = [Double](repeating: 0, count: v.count)
        for row in 0..<(v.count / n) {
            let r = v[(row * n)..<(row * n + n)]
            let m = r.max()!
            let e = r.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            for j in 0..<n { out[row * n + j] = e[j] / s }
        }
        return out
    }

    func testSoftmaxMatchesReferenceAndRowsSumToOne() {
        // 1037 is not a multiple of the SIMD widths; the values span most of exp's range after max-subtraction.
        for (shape, spread) in [([3, 7], Float(3)), ([2, 3, 5], Float(10)), ([4, 1037], Float(40))] {
            let x = randomTensor(shape, seed: 51, low: -spread, high: spread)
            let y = x.softmax()
            XCTAssertEqual(y.shape, shape)
            let yv = y.values, reference = naiveSoftmax(x)
            let n = shape.last!
            for row in 0..<(x.count / n) {
                var s = 0.0
                for j in 0..<n {
                    let i = row * n + j
                    s += Double(yv[i])
                    XCTAssertEqual(Double(yv[i]), reference[i], accuracy: 1e-6 + 1e-5 * reference[i], "softmax \(shape) element \(i)")
                }
                XCTAssertEqual(s, 1, accuracy: 1e-5, "softmax \(shape) row \(row) sums to \(s)")
            }
        }
    }

    func testSoftmaxLargeMagnitudeInputs() {
        let x = Tensor(shape: [2, 4], values: [1000, 999, -1000, 0, -5000, -5001, -5002, -4999.5])
        let y = x.softmax().values
        XCTAssertTrue(y.allSatisfy { $0.isFinite }, "\(y)")
        let e1 = Foundation.exp(-1.0)
        XCTAssertEqual(Double(y[0]), 1 / (1 + e1), accuracy: 1e-6)
        XCTAssertEqual(Double(y[1]), e1 / (1 + e1), accuracy: 1e-6)
        XCTAssertEqual(y[2], 0)
        XCTAssertEqual(y[3], 0)
        // A constant shift of a row does not change its softmax.
        let base = randomTensor([3, 6], seed: 52, low: -3, high: 3)
        let a = base.softmax().values, b = (base + 1000).softmax().values
        for i in 0..<a.count { XCTAssertEqual(a[i], b[i], accuracy: 2e-4) }
        XCTAssertEqual(Double(y[4] + y[5] + y[6] + y[7]), 1, accuracy: 1e-6)
        checkGradients("softmax large", inputs: [randomTensor([3, 7], seed: 53, low: 95, high: 105)]) { $0[0].softmax() }
        checkGradients("logSoftmax large", inputs: [randomTensor([3, 7], seed: 54, low: -105, high: -95)]) { $0[0].logSoftmax() }
        checkGradients("logSumExp large", inputs: [randomTensor([3, 7], seed: 55, low: 95, high: 105)]) { $0[0].logSumExp() }
        XCTAssertEqual(Tensor(shape: [1, 2], values: [1000, 1000]).logSumExp().item, 1000 + Float(Foundation.log(2.0)), accuracy: 1e-3)
    }

    func testMinusInfinityMaskGivesExactZero() {
        let scores = randomTensor([2, 3, 5], seed: 56)
        let mask = Tensor(shape: [1, 3, 5], values: [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
        let y = scores.maskedFill(mask, value: -.infinity).softmax()
        let yv = y.values, mv = mask.values
        for i in 0..<yv.count {
            if mv[i % 15] != 0 { XCTAssertEqual(yv[i], 0, "masked entry \(i)") } else { XCTAssertGreaterThan(yv[i], 0) }
        }
        for row in 0..<6 { XCTAssertEqual(yv[(row * 5)..<(row * 5 + 5)].reduce(0, +), 1, accuracy: 1e-6) }
        // A −∞ score's gradient is exactly zero, and the others match finite differences.
        checkGradients("masked softmax", inputs: [scores]) { $0[0].maskedFill(mask, value: -.infinity).softmax() }
        checkGradients("masked logSumExp", inputs: [scores]) { $0[0].maskedFill(mask, value: -.infinity).logSumExp() }
        let lsm = scores.maskedFill(mask, value: -.infinity).logSoftmax().values
        for i in 0..<lsm.count where mv[i % 15] != 0 { XCTAssertEqual(lsm[i], -.infinity) }
        // Rows that are entirely −∞ or contain +∞ follow torch.logsumexp.
        let edge = Tensor(shape: [2, 3], values: [-.infinity, -.infinity, -.infinity, 1, .infinity, 2]).logSumExp().values
        XCTAssertEqual(edge, [-.infinity, .infinity])
    }

    func testLogSoftmaxAndLogSumExpForward() {
        let x = randomTensor([4, 9], seed: 57, low: -6, high: 6)
        let lsm = x.logSoftmax().values, sm = naiveSoftmax(x)
        for i in 0..<lsm.count { XCTAssertEqual(Double(lsm[i]), Foundation.log(sm[i]), accuracy: 1e-5) }
        let lse = x.logSumExp()
        XCTAssertEqual(lse.shape, [4])
        let xv = x.values.map(Double.init), lv = lse.values
        for row in 0..<4 {
            let expected = Foundation.log(xv[(row * 9)..<(row * 9 + 9)].map { Foundation.exp($0) }.reduce(0, +))
            XCTAssertEqual(Double(lv[row]), expected, accuracy: 1e-5)
        }
        XCTAssertEqual(randomTensor([2, 3, 7], seed: 58).logSumExp().shape, [2, 3])
    }

    func testGradients() {
        for shape in [[3, 7], [2, 3, 5], [2, 37]] {
            let x = randomTensor(shape, seed: 59, low: -3, high: 3)
            checkGradients("softmax \(shape)", inputs: [x]) { $0[0].softmax() }
            checkGradients("logSoftmax \(shape)", inputs: [x]) { $0[0].logSoftmax() }
            checkGradients("logSumExp \(shape)", inputs: [x]) { $0[0].logSumExp() }
        }
    }
}
