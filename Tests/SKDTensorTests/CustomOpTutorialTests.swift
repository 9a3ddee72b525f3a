// The code of the DocC article "Adding an op with its backward" (Sources/SwiftSKD/SwiftSKD.docc/AddingAnOp.md):
// every region between `// tutorial: begin` and `// tutorial: end` is one of the article's code blocks, in order,
// and SKDCommandTests' DocumentationTests fails when the two differ. Compiled and run here, so the article cannot rot.

import Foundation
import SKDTensor
import SKDTestSupport
import XCTest

// tutorial: begin
extension Tensor {
    /// Softplus, `log(1 + eˣ)`, element-wise: a smooth ReLU. Any shape; the result has the shape of `self`.
    func softplus() -> Tensor {
        let x = self
        // Forward: a plain computation on the values (large x: log(1 + eˣ) = x to float precision).
        let out = Tensor(shape: x.shape, values: x.values.map { $0 > 20 ? $0 : Foundation.log1p(Foundation.exp($0)) })
        // Backward: d softplus / dx = σ(x) = 1 / (1 + e⁻ˣ); `g` is the gradient of the objective w.r.t. `out`,
        // shaped like it, and one gradient is returned per input given to `recorded`.
        return out.recorded("softplus", [x]) { g in
            let slope = Tensor(shape: x.shape, values: x.values.map { 1 / (1 + Foundation.exp(-$0)) })
            return [g * slope]
        }
    }
}
// tutorial: end

// tutorial: begin
final class CustomOpTutorialTests: XCTestCase {
    /// The forward pass against the same function composed from existing ops, exp and log.
    func testSoftplusMatchesTheComposedReference() {
        let x = randomTensor([2, 3, 4, 5], seed: 1, low: -6, high: 6)
        let reference = (x.exp() + 1).log()
        XCTAssertEqual(x.softplus().shape, x.shape)
        XCTAssertLessThan(x.softplus().relativeError(to: reference), 1e-6)
    }

    /// The backward pass against central finite differences of the forward pass.
    func testSoftplusGradientMatchesFiniteDifferences() {
        let x = randomTensor([2, 3, 4, 5], seed: 2, low: -3, high: 3)
        checkGradients("softplus", inputs: [x]) { inputs in inputs[0].softplus() }
    }
}
// tutorial: end

/// The check above can fail: the gradient it compares with is the true one, which a wrong backward misses.
final class CustomOpTutorialSelfTests: XCTestCase {
    func testTheGradientIsTheSigmoidAndAWrongOneDiffers() {
        let x = randomTensor([3, 4], seed: 3, low: -3, high: 3)
        x.requiresGrad = true
        x.softplus().sum().backward()
        let sigmoid = x.values.map { 1 / (1 + Foundation.exp(-$0)) }
        assertClose(x.grad!.values, sigmoid, accuracy: 1e-6)
        // Central differences of one element tell the true slope from a halved one.
        let h: Float = 1e-2, x0 = x.values[0]
        let numeric = (Foundation.log1p(Foundation.exp(x0 + h)) - Foundation.log1p(Foundation.exp(x0 - h))) / (2 * h)
        XCTAssertEqual(numeric, sigmoid[0], accuracy: 1e-3)
        XCTAssertGreaterThan(Swift.abs(0.5 * sigmoid[0] - numeric), 1e-2)
    }
}

private func assertClose(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: accuracy, file: file, line: line) }
}
