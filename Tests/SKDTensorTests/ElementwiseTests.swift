import SKDTensor
import SKDTestSupport
import XCTest

final class ElementwiseTests: XCTestCase {
    func testBroadcastForward() {
        let a = Tensor(shape: [2, 3, 1], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [1, 4], values: [10, 20, 30, 40])
        let c = a + b
        XCTAssertEqual(c.shape, [2, 3, 4])
        XCTAssertEqual(c.values[0..<4].map { $0 }, [11, 21, 31, 41])
        XCTAssertEqual(c.values[20..<24].map { $0 }, [16, 26, 36, 46])
    }

    func testBinaryGradients() {
        for (sa, sb) in [([3, 5], [3, 5]), ([2, 3, 5, 7], [1, 3, 1, 1]), ([4, 1, 5], [3, 1]), ([3, 5], [])] {
            let a = randomTensor(sa, seed: 1), b = randomTensor(sb, seed: 2, low: 0.5, high: 1.5)
            checkGradients("add \(sa) \(sb)", inputs: [a, b]) { $0[0] + $0[1] }
            checkGradients("sub \(sa) \(sb)", inputs: [a, b]) { $0[0] - $0[1] }
            checkGradients("mul \(sa) \(sb)", inputs: [a, b]) { $0[0] * $0[1] }
            checkGradients("div \(sa) \(sb)", inputs: [a, b]) { $0[0] / $0[1] }
            checkGradients("maximum \(sa) \(sb)", inputs: [a, b]) { Tensor.maximum($0[0], $0[1]) }
        }
    }

    func testScalarAndUnaryGradients() {
        let x = randomTensor([3, 7], seed: 3)
        let positive = randomTensor([3, 7], seed: 4, low: 0.2, high: 2)
        checkGradients("scalar", inputs: [x]) { (2 - $0[0] * 3 + 1) / 4 }
        checkGradients("exp", inputs: [x]) { $0[0].exp() }
        checkGradients("log", inputs: [positive]) { $0[0].log() }
        checkGradients("sqrt", inputs: [positive]) { $0[0].sqrt() }
        checkGradients("pow", inputs: [positive]) { $0[0].pow(1.5) }
        checkGradients("abs", inputs: [x]) { $0[0].abs() }
        checkGradients("square", inputs: [x]) { $0[0].square() }
        // Values kept away from the kinks, where central differences are meaningless.
        let clampInput = Tensor(shape: [6], values: [-0.9, -0.3, 0.1, 0.35, 0.8, 1.2])
        checkGradients("clamp", inputs: [clampInput]) { $0[0].clamped(-0.5, 0.5) }
        checkGradients("relu", inputs: [x]) { $0[0].relu() }
        checkGradients("leakyRelu", inputs: [x]) { $0[0].leakyRelu() }
        checkGradients("sigmoid", inputs: [x]) { $0[0].sigmoid() }
        checkGradients("tanh", inputs: [x]) { $0[0].tanh() }
        checkGradients("gelu", inputs: [randomTensor([3, 7], seed: 8, low: -3, high: 3)]) { $0[0].gelu() }
    }

    func testGeluMatchesErfDefinition() {
        let x = Tensor(shape: [3], values: [-1, 0, 2])
        let y = x.gelu().values
        XCTAssertEqual(y[0], -0.15865525, accuracy: 1e-6)
        XCTAssertEqual(y[1], 0, accuracy: 1e-7)
        XCTAssertEqual(y[2], 1.9544997, accuracy: 1e-6)
    }

    func testReductionsAndShapes() {
        let x = randomTensor([2, 3, 4, 5], seed: 5)
        checkGradients("sum axes", inputs: [x]) { $0[0].sum(axes: [1, 3]) }
        checkGradients("mean keepDims", inputs: [x]) { $0[0].mean(axes: [0, 2], keepDims: true) }
        checkGradients("sum all", inputs: [x]) { $0[0].sum() }
        checkGradients("expand", inputs: [randomTensor([3, 1, 5], seed: 6)]) { $0[0].expanded(to: [2, 3, 4, 5]) }
        checkGradients("reshape", inputs: [x]) { $0[0].reshaped([6, -1]) }
        checkGradients("permute", inputs: [x]) { $0[0].permuted([2, 0, 3, 1]) }
        checkGradients("transpose", inputs: [x]) { $0[0].transposed(-1, -2) }
        let s = x.sum(axes: [1, 3]).values
        let xv = x.values
        var expected: Float = 0
        for c in 0..<3 { for w in 0..<5 { let index: Int = c * 20 + w; expected += xv[index] } }
        XCTAssertEqual(s[0], expected, accuracy: 1e-5)
        let p = x.permuted([3, 2, 1, 0])
        let pIndex: Int = ((4 * 4 + 3) * 3 + 2) * 2 + 1, xIndex: Int = ((1 * 3 + 2) * 4 + 3) * 5 + 4
        XCTAssertEqual(p.values[pIndex], xv[xIndex])
    }

    func testGradientsAccumulateAndNoGradRecordsNothing() {
        let w = randomTensor([4], seed: 7)
        w.requiresGrad = true
        (w * 2).sum().backward()
        (w * 3).sum().backward()
        XCTAssertEqual(w.grad!.values, [5, 5, 5, 5])
        w.zeroGrad()
        XCTAssertNil(w.grad)
        let y = noGrad { w * 2 }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
    }
}

/// Graphs that are built but never back-propagated are freed (no reference cycles through backward closures).
final class GraphLifetimeTests: XCTestCase {
    private final class WeakBox { weak var tensor: Tensor?; init(_ t: Tensor) { tensor = t } }

    func testAbandonedGraphsAreFreed() {
        var boxes: [(String, WeakBox)] = []
        do {
            let x = randomTensor([4, 5], seed: 1)
            x.requiresGrad = true
            // Every op whose backward reads its own output, and a few that read their inputs.
            let ops: [(String, (Tensor) -> Tensor)] = [
                ("exp", { $0.exp() }), ("sigmoid", { $0.sigmoid() }), ("tanh", { $0.tanh() }), ("relu", { $0.relu() }),
                ("sqrt", { ($0 * $0 + 1).sqrt() }), ("softmax", { $0.softmax() }), ("gelu", { $0.gelu() }),
                ("layerNorm", { $0.layerNorm(weight: nil, bias: nil) }), ("l2Normalized", { $0.l2Normalized() }),
            ]
            for (name, op) in ops {
                let y = op(x)
                XCTAssertTrue(y.requiresGrad, name)
                boxes.append((name, WeakBox(y)))
            }
        }
        for (name, box) in boxes { XCTAssertNil(box.tensor, "the output of an abandoned \(name) leaked") }
    }

    func testBackwardReleasesTheGraph() {
        weak var weakIntermediate: Tensor?
        let x = randomTensor([3, 3], seed: 2)
        x.requiresGrad = true
        do {
            let hidden = x.exp() * x
            weakIntermediate = hidden
            hidden.sum().backward()
        }
        XCTAssertNil(weakIntermediate)
        XCTAssertNotNil(x.grad)
    }
}
