import SKDTensor
import SKDTestSupport
import XCTest

final class MatmulTests: XCTestCase {
    /// Naive triple loop for reference.
    private func naive(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { var s: Float = 0; for p in 0..<k { s += a[i * k + p] * b[p * n + j] }; c[i * n + j] = s } }
        return c
    }

    func testGemmSmoke() {
        let a = randomTensor([5, 7], seed: 1), b = randomTensor([7, 3], seed: 2)
        let c = Tensor.matmul(a, b)
        let ref = naive(a.values, b.values, m: 5, n: 3, k: 7)
        for (x, y) in zip(c.values, ref) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        // Transposed operands give the same product.
        let ct = Tensor.matmul(a.transposed(0, 1), b.transposed(0, 1), transposeA: true, transposeB: true)
        XCTAssertLessThan(relativeError(ct, c), 1e-6)
    }

    func testMatmulGradients() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randomTensor(ta ? [2, 5, 3] : [2, 3, 5], seed: 3)
            let b = randomTensor(tb ? [2, 4, 5] : [2, 5, 4], seed: 4)
            checkGradients("bmm \(ta) \(tb)", inputs: [a, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            let shared = randomTensor(tb ? [4, 5] : [5, 4], seed: 5)
            checkGradients("bmm shared B \(ta) \(tb)", inputs: [a, shared]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            let sharedA = randomTensor(ta ? [5, 3] : [3, 5], seed: 6)
            checkGradients("bmm shared A \(ta) \(tb)", inputs: [sharedA, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        }
    }

    func testLinearGradients() {
        let x = randomTensor([2, 3, 6], seed: 7), w = randomTensor([5, 6], seed: 8), b = randomTensor([5], seed: 9)
        checkGradients("linear", inputs: [x, w, b]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients("linear no bias", inputs: [x, w]) { Tensor.linear($0[0], weight: $0[1]) }
    }
}
