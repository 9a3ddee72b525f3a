import SKDTensor
import SKDTestSupport
import XCTest

final class IndexingTests: XCTestCase {
    /// The multi-index of flat index `i` in `shape`.
    private func multiIndex(_ i: Int, _ shape: [Int]) -> [Int] {
        var rem = i, out = [Int](repeating: 0, count: shape.count)
        for k in stride(from: shape.count - 1, through: 0, by: -1) { out[k] = rem % shape[k]; rem /= shape[k] }
        return out
    }

    private func flatIndex(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, Tensor.strides(of: shape)).map { $0 * $1 }.reduce(0, +)
    }

    // MARK: concat / split / chunk / slice / stack

    func testConcatAndSplitForward() {
        let a = Tensor(shape: [2, 1, 2], values: [1, 2, 3, 4])
        let b = Tensor(shape: [2, 2, 2], values: [5, 6, 7, 8, 9, 10, 11, 12])
        let c = Tensor.concat([a, b], axis: 1)
        XCTAssertEqual(c.shape, [2, 3, 2])
        XCTAssertEqual(c.values, [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
        let last = Tensor.concat([a, Tensor(shape: [2, 1, 1], values: [0, -1])], axis: -1)
        XCTAssertEqual(last.shape, [2, 1, 3])
        XCTAssertEqual(last.values, [1, 2, 0, 3, 4, -1])
        XCTAssertEqual(Tensor.concat([a, a], axis: 0).values, [1, 2, 3, 4, 1, 2, 3, 4])

        let pieces = c.split([1, 2], axis: 1)
        XCTAssertEqual(pieces.map(\.shape), [[2, 1, 2], [2, 2, 2]])
        XCTAssertEqual(pieces[0].values, a.values)
        XCTAssertEqual(pieces[1].values, b.values)
        let chunks = c.chunk(2, axis: -1)
        XCTAssertEqual(chunks.map(\.shape), [[2, 3, 1], [2, 3, 1]])
        XCTAssertEqual(chunks[0].values, [1, 5, 7, 3, 9, 11])
        XCTAssertEqual(chunks[1].values, [2, 6, 8, 4, 10, 12])
        let s = c.slice(axis: 1, start: 1, end: 3)
        XCTAssertEqual(s.values, b.values)
        XCTAssertEqual(c.slice(axis: 2, start: 1, end: 2).values, chunks[1].values)
        XCTAssertEqual(c.slice(axis: 0, start: 1, end: 1).shape, [0, 3, 2])

        let st = Tensor.stack([a, b.slice(axis: 1, start: 0, end: 1)], axis: 1)
        XCTAssertEqual(st.shape, [2, 2, 1, 2])
        XCTAssertEqual(st.values, [1, 2, 5, 6, 3, 4, 9, 10])
        XCTAssertEqual(Tensor.stack([a, a], axis: -1).shape, [2, 1, 2, 2])
        XCTAssertEqual(Tensor.stack([a, a], axis: -1).values, [1, 1, 2, 2, 3, 3, 4, 4])
    }

    func testConcatSplitGradients() {
        let x = randomTensor([2, 3, 4], seed: 61), y = randomTensor([2, 1, 4], seed: 62), z = randomTensor([2, 5, 4], seed: 63)
        checkGradients("concat axis 1", inputs: [x, y, z]) { Tensor.concat($0, axis: 1) }
        let u = randomTensor([2, 3, 3], seed: 64), v = randomTensor([2, 3, 1], seed: 65)
        checkGradients("concat last axis", inputs: [x, u, v]) { Tensor.concat($0, axis: -1) }
        checkGradients("concat repeated input", inputs: [x]) { Tensor.concat([$0[0], $0[0] * 2], axis: 0) }
        checkGradients("stack", inputs: [x, randomTensor([2, 3, 4], seed: 66)]) { Tensor.stack($0, axis: 2) }

        let w = randomTensor([2, 7, 5, 3], seed: 67)
        // Only some pieces are used: the unused ones contribute nothing (numerically zero gradient there).
        checkGradients("split axis 1, pieces 0 and 2", inputs: [w]) {
            let p = $0[0].split([2, 3, 2], axis: 1)
            return p[0] * 3 + p[2]
        }
        checkGradients("split all pieces", inputs: [w]) {
            let p = $0[0].split([4, 0, 3], axis: 1)
            return Tensor.concat([p[1], p[2], p[0] * p[0]], axis: 1)
        }
        checkGradients("chunk last axis, middle only", inputs: [w]) { $0[0].chunk(3, axis: -1)[1] }
        checkGradients("chunk axis 1 (7 → 7)", inputs: [w]) { $0[0].chunk(7, axis: 1)[6].exp() }
        checkGradients("slice last axis", inputs: [w]) { $0[0].slice(axis: 3, start: 1, end: 3) }
        checkGradients("slice axis 1", inputs: [w]) { $0[0].slice(axis: 1, start: 2, end: 7) }

        // Gradient of an unused piece is exactly zero in the input.
        let t = randomTensor([3, 4], seed: 68)
        t.requiresGrad = true
        t.chunk(2, axis: 1)[0].sum().backward()
        XCTAssertEqual(t.grad!.values, [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0])
    }

    // MARK: roll

    func testRolledForward() {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(x.rolled(shifts: [1], axes: [1]).values, [3, 1, 2, 6, 4, 5])
        XCTAssertEqual(x.rolled(shifts: [-1], axes: [1]).values, [2, 3, 1, 5, 6, 4])
        XCTAssertEqual(x.rolled(shifts: [1, -1], axes: [0, 1]).values, [5, 6, 4, 2, 3, 1])
        XCTAssertEqual(x.rolled(shifts: [4], axes: [-1]).values, x.rolled(shifts: [1], axes: [1]).values)
        XCTAssertEqual(x.rolled(shifts: [1, 1], axes: [1, 1]).values, x.rolled(shifts: [2], axes: [1]).values)
        XCTAssertEqual(x.rolled(shifts: [0, 3], axes: [0, 1]).values, x.values)

        // Against the index formula out[(i + s) mod n] = x[i], on a 4-D map (Swin/Uformer's shift on H and W).
        let shape = [2, 3, 5, 7]
        let t = randomTensor(shape, seed: 71)
        for (shifts, axes) in [([-2, 3], [1, 3]), ([5, -9], [2, 3]), ([-1, -1], [-2, -1]), ([1], [0])] {
            let r = t.rolled(shifts: shifts, axes: axes).values, tv = t.values
            for i in 0..<t.count {
                var src = multiIndex(i, shape)
                for (s, a) in zip(shifts, axes) {
                    let k = a < 0 ? a + 4 : a
                    src[k] = ((src[k] - s) % shape[k] + shape[k]) % shape[k]
                }
                XCTAssertEqual(r[i], tv[flatIndex(src, shape)], "roll \(shifts) \(axes) at \(multiIndex(i, shape))")
            }
        }
    }

    func testRolledGradients() {
        let t = randomTensor([2, 3, 5, 7], seed: 72)
        checkGradients("roll negative two axes", inputs: [t]) { $0[0].rolled(shifts: [-2, -3], axes: [2, 3]) }
        checkGradients("roll mixed", inputs: [t]) { $0[0].rolled(shifts: [4, -1, 8], axes: [1, 2, -1]) }
        // A roll followed by the opposite roll is the identity.
        XCTAssertEqual(t.rolled(shifts: [-2, 3], axes: [2, 3]).rolled(shifts: [2, -3], axes: [2, 3]).values, t.values)
    }

    // MARK: topKMask

    func testTopKMaskKnownAnswer() {
        let x = Tensor(shape: [2, 5], values: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
        XCTAssertEqual(x.topKMask(2).values, [0, 0, 1, 0, 1, 1, 0, 1, 0, 0])
        // k > n/2 takes the complement path; of the tied 1s the lower index is kept.
        XCTAssertEqual(x.topKMask(4).values, [1, 1, 1, 0, 1, 1, 0, 1, 1, 1])
        XCTAssertEqual(x.topKMask(0).values, [Float](repeating: 0, count: 10))
        XCTAssertEqual(x.topKMask(5).values, [Float](repeating: 1, count: 10))
        XCTAssertEqual(x.topKMask(1).values, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
        let tied = Tensor(shape: [1, 4], values: [2, 2, 2, 2])
        XCTAssertEqual(tied.topKMask(1).values, [1, 0, 0, 0])
        XCTAssertEqual(tied.topKMask(3).values, [1, 1, 1, 0])
    }

    func testTopKMaskAgainstSort() {
        let x = randomTensor([6, 3, 29], seed: 73)
        x.requiresGrad = true
        for k in [1, 7, 14, 15, 20, 28] {
            let m = x.topKMask(k)
            XCTAssertFalse(m.requiresGrad, "topKMask must not record history")
            let mv = m.values, xv = x.values
            for row in 0..<18 {
                let r = Array(xv[(row * 29)..<(row * 29 + 29)])
                let threshold = r.sorted(by: >)[k - 1]
                var ones = 0
                for j in 0..<29 {
                    let v = mv[row * 29 + j]
                    XCTAssertTrue(v == 0 || v == 1)
                    if v == 1 { ones += 1; XCTAssertGreaterThanOrEqual(r[j], threshold) } else { XCTAssertLessThan(r[j], threshold) }
                }
                XCTAssertEqual(ones, k, "row \(row), k \(k)")
            }
        }
    }

    // MARK: select / maskedFill

    func testSelectForwardAndGradients() {
        let mask = Tensor(shape: [2, 1, 3], values: [1, 0, 1, 0, 0, 1])
        let a = randomTensor([2, 4, 3], seed: 81), b = Tensor(-7)
        let y = Tensor.select(mask, a, b)
        XCTAssertEqual(y.shape, [2, 4, 3])
        let yv = y.values, av = a.values, mv = mask.values
        for i in 0..<24 {
            let idx = multiIndex(i, [2, 4, 3])
            XCTAssertEqual(yv[i], mv[idx[0] * 3 + idx[2]] != 0 ? av[i] : -7)
        }
        // All three broadcast: mask [4, 1], a [3], b [2, 1, 1] → [2, 4, 3].
        let m2 = Tensor(shape: [4, 1], values: [0, 1, 1, 0])
        let a2 = randomTensor([3], seed: 82), b2 = randomTensor([2, 1, 1], seed: 83)
        let y2 = Tensor.select(m2, a2, b2)
        XCTAssertEqual(y2.shape, [2, 4, 3])
        XCTAssertEqual(y2.values[3 + 2], a2.values[2])
        XCTAssertEqual(y2.values[12 + 0], b2.values[1])

        checkGradients("select same shape", inputs: [a, randomTensor([2, 4, 3], seed: 84)]) {
            Tensor.select(mask, $0[0], $0[1])
        }
        checkGradients("select broadcast", inputs: [a2, b2]) { Tensor.select(m2, $0[0], $0[1]) }
        checkGradients("select scalar b", inputs: [a, Tensor(0.5)]) { Tensor.select(mask, $0[0], $0[1]) }
        checkGradients("select scalar a", inputs: [Tensor(0.5), a]) { Tensor.select(mask, $0[0], $0[1]) }
    }

    func testMaskedFill() {
        let x = randomTensor([2, 3, 4], seed: 85)
        let mask = Tensor(shape: [3, 1], values: [0, 1, 0])
        let y = x.maskedFill(mask, value: 9)
        let yv = y.values, xv = x.values
        for i in 0..<24 { XCTAssertEqual(yv[i], multiIndex(i, [2, 3, 4])[1] == 1 ? 9 : xv[i]) }
        checkGradients("maskedFill", inputs: [x]) { $0[0].maskedFill(mask, value: 9) }
        let full = Tensor(shape: [2, 3, 4], values: (0..<24).map { Float($0 % 3 == 0 ? 1 : 0) })
        checkGradients("maskedFill full mask", inputs: [x]) { $0[0].maskedFill(full, value: -1).square() }
        x.requiresGrad = true
        x.zeroGrad()
        x.maskedFill(full, value: -1).sum().backward()
        XCTAssertEqual(x.grad!.values, full.values.map { 1 - $0 })
    }

    // MARK: gatherRows

    func testGatherRows() {
        let table = Tensor(shape: [4, 3], values: (0..<12).map(Float.init))
        let y = Tensor.gatherRows(table, indices: [2, 0, 2, 3])
        XCTAssertEqual(y.shape, [4, 3])
        XCTAssertEqual(y.values, [6, 7, 8, 0, 1, 2, 6, 7, 8, 9, 10, 11])
        XCTAssertEqual(Tensor.gatherRows(table, indices: []).shape, [0, 3])

        let t = randomTensor([5, 7], seed: 91)
        checkGradients("gatherRows repeated", inputs: [t]) { Tensor.gatherRows($0[0], indices: [4, 1, 4, 0, 4, 1]) }
        t.requiresGrad = true
        t.zeroGrad()
        let g = Tensor(shape: [3, 7], values: (0..<21).map(Float.init))
        Tensor.gatherRows(t, indices: [2, 0, 2]).backward(g)
        let grad = t.grad!.values
        XCTAssertEqual(Array(grad[0..<7]), (7..<14).map(Float.init))
        XCTAssertEqual(Array(grad[14..<21]), (0..<7).map { Float($0) + Float($0 + 14) })
        XCTAssertEqual(Array(grad[7..<14]) + Array(grad[21..<35]), [Float](repeating: 0, count: 21))
    }
}
