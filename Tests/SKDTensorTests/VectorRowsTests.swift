import SKDTensor
import SKDTestSupport
import XCTest

/// The C row kernels (AVX2 + FMA where the CPU has it) against their scalar definitions.
final class VectorRowsTests: XCTestCase {
    func testDepthwise3RowMatchesDefinition() {
        for n in [1, 2, 3, 7, 8, 9, 17, 64, 513] {
            let line = randomTensor([n], seed: UInt64(n), low: -3, high: 3).values
            let start = randomTensor([n], seed: UInt64(n + 1000)).values
            let (w0, w1, w2): (Float, Float, Float) = (0.7, -1.3, 0.45)
            var row = start
            row.withUnsafeMutableBufferPointer { r in
                line.withUnsafeBufferPointer { l in
                    VectorRows.depthwise3Accumulate(r.baseAddress!, l.baseAddress!, w0, w1, w2, count: n)
                }
            }
            for i in 0..<n {
                let left: Float = i > 0 ? line[i - 1] : 0, right: Float = i + 1 < n ? line[i + 1] : 0
                let expected = start[i] + w0 * left + w1 * line[i] + w2 * right
                XCTAssertEqual(row[i], expected, accuracy: 1e-5, "n \(n), i \(i)")
            }
        }
    }

    func testGeluGateMatchesFastMathAndErf() {
        for n in [0, 1, 5, 8, 31, 1000] {
            // Wide range: the far tails (|x| > 4 clamps erf) and the region around 0.
            let a = randomTensor([max(n, 1)], seed: UInt64(n + 5), low: -9, high: 9).values
            let b = randomTensor([max(n, 1)], seed: UInt64(n + 6), low: -2, high: 2).values
            var out = [Float](repeating: .nan, count: max(n, 1))
            out.withUnsafeMutableBufferPointer { o in
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in VectorRows.geluGate(o.baseAddress!, pa.baseAddress!, pb.baseAddress!, count: n) }
                }
            }
            for i in 0..<n {
                let x = Double(a[i])
                let exact = 0.5 * x * (1 + erf(x / 2.0.squareRoot())) * Double(b[i])
                XCTAssertEqual(Double(out[i]), exact, accuracy: 2e-6 * max(1, abs(exact)), "n \(n), x \(x)")
                XCTAssertEqual(out[i], FastMath.gelu(a[i]) * b[i], accuracy: 1e-6 * max(1, abs(out[i])))
                var g: Float = 0
                a.withUnsafeBufferPointer { pa in VectorRows.gelu(&g, pa.baseAddress! + i, count: 1) }
                XCTAssertEqual(g, FastMath.gelu(a[i]), accuracy: 1e-6 * max(1, abs(g)))
            }
            if n == 0 { XCTAssertTrue(out[0].isNaN, "count 0 must write nothing") }
        }
    }
}
