import SKDTensor
import SKDTestSupport
import XCTest

final class PoolingTests: XCTestCase {
    /// Window reduction by definition: `reduce` over the in-image elements of each window, plus the window's
    /// full (padded) area and in-image count.
    private func naivePool(_ x: Tensor, kernel k: Int, stride s: Int, padding p: Int,
                           _ reduce: ([Float], Int, Int) -> Float) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        let xv = x.values
        var out: [Float] = []
        for plane in 0..<(n * c) { for oh in 0..<ho { for ow in 0..<wo {
            var window: [Float] = []
            var area = 0
            for ki in 0..<k { for kj in 0..<k {
                let ih = oh * s - p + ki, iw = ow * s - p + kj
                area += 1
                if ih >= 0, ih < h, iw >= 0, iw < w { window.append(xv[(plane * h + ih) * w + iw]) }
            } }
            out.append(reduce(window, area, window.count))
        } } }
        return Tensor(shape: [n, c, ho, wo], values: out)
    }

    /// A tensor whose elements are distinct and at least 0.05 apart (a shuffled ramp), so max-pooling's
    /// arg-max is stable under the gradient check's ±0.01 perturbations.
    private func distinctTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SKDRandom(seed: seed)
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.05 - Float(count) * 0.025 }
        values.shuffle(using: &rng)
        return Tensor(shape: shape, values: values)
    }

    private let configs: [(shape: [Int], kernel: Int, stride: Int, padding: Int)] = [
        ([2, 3, 7, 9], 2, 2, 0),
        ([1, 5, 9, 8], 3, 2, 1),
        ([1, 3, 8, 7], 3, 1, 1),
        ([2, 2, 11, 10], 5, 3, 2),
        ([1, 3, 6, 5], 4, 4, 2),
    ]

    func testAvgPoolMatchesDefinition() {
        for (i, c) in configs.enumerated() {
            let x = randomTensor(c.shape, seed: UInt64(i + 1))
            let excl = x.avgPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding)
            let refExcl = naivePool(x, kernel: c.kernel, stride: c.stride, padding: c.padding) { w, _, n in w.reduce(0, +) / Float(n) }
            XCTAssertEqual(excl.shape, refExcl.shape)
            XCTAssertLessThan(relativeError(excl, refExcl), 1e-6, "\(c)")
            let incl = x.avgPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding, countIncludePad: true)
            let refIncl = naivePool(x, kernel: c.kernel, stride: c.stride, padding: c.padding) { w, area, _ in w.reduce(0, +) / Float(area) }
            XCTAssertLessThan(relativeError(incl, refIncl), 1e-6, "\(c)")
        }
    }

    func testAvgPoolKnownValues() {
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        // padding 1, kernel 2, stride 2 → 2×2 output, each window sees one element.
        XCTAssertEqual(x.avgPool2d(kernel: 2, stride: 2, padding: 1).values, [1, 2, 3, 4])
        XCTAssertEqual(x.avgPool2d(kernel: 2, stride: 2, padding: 1, countIncludePad: true).values, [0.25, 0.5, 0.75, 1])
        XCTAssertEqual(x.avgPool2d(kernel: 2, stride: 1).values, [2.5])
    }

    func testMaxPoolMatchesDefinition() {
        for (i, c) in configs.enumerated() {
            let x = randomTensor(c.shape, seed: UInt64(i + 11))
            let y = x.maxPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding)
            let ref = naivePool(x, kernel: c.kernel, stride: c.stride, padding: c.padding) { w, _, _ in w.max()! }
            XCTAssertEqual(y.shape, ref.shape)
            XCTAssertEqual(y.values, ref.values, "\(c)")
        }
    }

    func testMaxPoolGradientGoesToFirstMaximum() {
        // Window [5, 5; 1, 5]: the first 5 (top-left) takes the whole gradient.
        let x = Tensor(shape: [1, 1, 2, 2], values: [5, 5, 1, 5])
        x.requiresGrad = true
        let y = x.maxPool2d(kernel: 2, stride: 2)
        XCTAssertEqual(y.values, [5])
        (y * 3).sum().backward()
        XCTAssertEqual(x.grad?.values, [3, 0, 0, 0])
        // Overlapping windows: an element that is the max of two windows gets both gradients; padding is −∞.
        let z = Tensor(shape: [1, 1, 1, 3], values: [-2, -1, -3])
        z.requiresGrad = true
        let m = z.maxPool2d(kernel: 3, stride: 1, padding: 1)
        XCTAssertEqual(m.values, [-1, -1, -1])
        m.sum().backward()
        XCTAssertEqual(z.grad?.values, [0, 3, 0])
    }

    func testPoolingGradients() {
        for (i, c) in configs.enumerated() {
            let x = distinctTensor(c.shape, seed: UInt64(i + 21))
            checkGradients("avgPool \(c)", inputs: [x]) { $0[0].avgPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding) }
            checkGradients("avgPool incl \(c)", inputs: [x]) {
                $0[0].avgPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding, countIncludePad: true)
            }
            checkGradients("maxPool \(c)", inputs: [x]) { $0[0].maxPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding) }
        }
    }

    /// Plane means computed in Double.
    private func planeMeans(_ x: Tensor) -> [Float] {
        let hw = x.shape[2] * x.shape[3], v = x.values
        return (0..<(x.count / hw)).map { p in Float(v[(p * hw)..<((p + 1) * hw)].reduce(0.0) { $0 + Double($1) } / Double(hw)) }
    }

    func testAdaptiveAvgPool() {
        let x = randomTensor([2, 5, 7, 3], seed: 31)
        let y = x.adaptiveAvgPool1x1()
        XCTAssertEqual(y.shape, [2, 5, 1, 1])
        for (a, b) in zip(y.values, planeMeans(x)) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        checkGradients("adaptiveAvgPool1x1", inputs: [x]) { $0[0].adaptiveAvgPool1x1() }
        // Planes large enough to take the chunked, parallel path.
        let big = randomTensor([1, 3, 70, 50], seed: 32, low: 0, high: 2)
        for (a, b) in zip(big.adaptiveAvgPool1x1().values, planeMeans(big)) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }
}
