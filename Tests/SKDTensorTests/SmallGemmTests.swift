import CSKDKernels
import Foundation
import SKDTensor
import SKDTestSupport
import XCTest

/// The direct products of CSKDGemm.h — every variant (each kernel level the CPU supports) against one plain
/// Double reference, over shapes around the tiles' edges (rows 1–9 and 33, columns 1–17, 63–65 and 130, inner
/// dimensions 1–300), padded leading dimensions and unaligned pointers, with guard values that must stay
/// untouched; and `BLAS.sgemm`'s routing, which must give OpenBLAS's result whichever path it takes.
final class SmallGemmTests: XCTestCase {
    /// `count` uniform values with `pad` guard floats on both sides, one float past a 64-byte boundary.
    final class Buffer {
        let storage: UnsafeMutablePointer<Float>
        let count: Int
        static let pad = 17
        var p: UnsafeMutablePointer<Float> { storage + Self.pad }
        init(count: Int, seed: UInt64) {
            self.count = count
            storage = UnsafeMutableRawPointer.allocate(byteCount: (count + 2 * Self.pad) * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: count + 2 * Self.pad)
            storage.initialize(repeating: 12345, count: count + 2 * Self.pad)
            if count > 0 {
                let values = randomTensor([count], seed: seed).values
                for i in 0..<count { p[i] = values[i] }
            }
        }
        deinit { storage.deallocate() }
        var guardsIntact: Bool {
            (0..<Self.pad).allSatisfy { storage[$0] == 12345 && storage[Self.pad + count + $0] == 12345 }
        }
    }

    func forEachLevel(_ body: (Int) throws -> Void) rethrows {
        let saved = VectorRows.level
        defer { VectorRows.setLevel(saved) }
        for level in 0...VectorRows.maxLevel {
            XCTAssertEqual(VectorRows.setLevel(level), level)
            try body(level)
        }
    }

    /// C (ldc) = A·op(B) (+ C0), in Double.
    func reference(m: Int, n: Int, k: Int, a: Buffer, lda: Int, b: Buffer, ldb: Int, transB: Bool,
                   c0: [Float]?, ldc: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = c0.map { Double($0[i * ldc + j]) } ?? 0
                for p in 0..<k { s += Double(a.p[i * lda + p]) * Double(transB ? b.p[j * ldb + p] : b.p[p * ldb + j]) }
                out[i * n + j] = s
            }
        }
        return out
    }

    func check(m: Int, n: Int, k: Int, transB: Bool, accumulate: Bool, extra: Int, level: Int,
               file: StaticString = #filePath, line: UInt = #line) {
        let lda = k + extra, ldb = (transB ? k : n) + extra, ldc = n + extra
        let a = Buffer(count: m * lda, seed: UInt64(31 * m + k))
        let b = Buffer(count: (transB ? n : k) * ldb, seed: UInt64(17 * n + k + 5))
        let c = Buffer(count: m * ldc, seed: UInt64(m + n + 99))
        let c0 = Array(UnsafeBufferPointer(start: c.p, count: c.count))
        let expected = reference(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transB: transB,
                                 c0: accumulate ? c0 : nil, ldc: ldc)
        if transB {
            skd_small_sgemm_nt(m, n, k, a.p, lda, b.p, ldb, c.p, ldc, accumulate ? 1 : 0)
        } else {
            skd_small_sgemm(m, n, k, a.p, lda, b.p, ldb, c.p, ldc, accumulate ? 1 : 0)
        }
        let scale = Double(k).squareRoot() + 1
        for i in 0..<m {
            for j in 0..<n {
                let got = Double(c.p[i * ldc + j]), want = expected[i * n + j]
                if abs(got - want) > 2e-6 * scale * (1 + abs(want)) {
                    XCTFail("level \(level) \(transB ? "A·Bᵀ" : "A·B") \(m)×\(n)×\(k) acc \(accumulate): C[\(i),\(j)] = \(got), expected \(want)",
                            file: file, line: line)
                    return
                }
            }
            // The padding columns of C are not written.
            for j in n..<ldc where c.p[i * ldc + j] != c0[i * ldc + j] {
                XCTFail("level \(level): padding C[\(i),\(j)] written", file: file, line: line); return
            }
        }
        XCTAssertTrue(a.guardsIntact && b.guardsIntact && c.guardsIntact, "level \(level): a guard was overwritten",
                      file: file, line: line)
    }

    func testDirectProductAtEveryLevelAgainstAPlainReference() {
        forEachLevel { level in
            for m in [1, 2, 3, 4, 5, 6, 7, 9, 33] {
                for n in [1, 15, 16, 17, 63, 64, 65, 130] {
                    for k in [1, 3, 8, 27, 161] {
                        check(m: m, n: n, k: k, transB: false, accumulate: (m + n) % 2 == 0, extra: (k % 3), level: level)
                    }
                }
            }
        }
    }

    func testDirectTransposedProductAtEveryLevelAgainstAPlainReference() {
        forEachLevel { level in
            for m in [1, 2, 3, 4, 5, 8, 9] {
                for n in [1, 2, 3, 4, 5, 7, 16, 17] {
                    for k in [1, 15, 16, 17, 300] {
                        check(m: m, n: n, k: k, transB: true, accumulate: (m + k) % 2 == 1, extra: (n % 2) * 3, level: level)
                    }
                }
            }
        }
    }

    /// Over a weight gradient's inner dimension (64 K pixels) the A·Bᵀ kernel sums in two levels: its error stays
    /// within 1e-6 of Σ|aₚbₚ| (a plain 16-lane running sum misses that by an order of magnitude), so results do not
    /// depend on the split of a batch across processes beyond OpenBLAS's own rounding.
    func testTransposedProductIsAccurateOverLongInnerDimensions() {
        forEachLevel { level in
            let m = 3, n = 2, k = 65_536 + 37
            let a = Buffer(count: m * k, seed: 41), b = Buffer(count: n * k, seed: 42)
            let c = Buffer(count: m * n, seed: 43)
            skd_small_sgemm_nt(m, n, k, a.p, k, b.p, k, c.p, n, 0)
            for i in 0..<m {
                for j in 0..<n {
                    var exact = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let product = Double(a.p[i * k + p]) * Double(b.p[j * k + p])
                        exact += product; magnitude += abs(product)
                    }
                    XCTAssertLessThan(abs(Double(c.p[i * n + j]) - exact), 1e-6 * magnitude, "level \(level) C[\(i),\(j)]")
                }
            }
        }
    }

    /// The same columns computed in one call or split in blocks of 64 (as `BLAS.sgemm` splits them over threads)
    /// are bit-identical: each element sums in the same order.
    func testColumnSplitsAreBitIdentical() {
        forEachLevel { _ in
            let m = 8, n = 200, k = 27
            let a = Buffer(count: m * k, seed: 1), b = Buffer(count: k * n, seed: 2)
            let whole = Buffer(count: m * n, seed: 3), split = Buffer(count: m * n, seed: 3)
            skd_small_sgemm(m, n, k, a.p, k, b.p, n, whole.p, n, 0)
            for start in stride(from: 0, to: n, by: 64) {
                skd_small_sgemm(m, min(64, n - start), k, a.p, k, b.p + start, n, split.p + start, n, 0)
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: whole.p, count: m * n)),
                           Array(UnsafeBufferPointer(start: split.p, count: m * n)))
        }
    }

    /// `BLAS.sgemm` with the direct kernels on and off agrees with itself over the narrow shapes of a dim-8 student
    /// (1×1 convolutions, im2col products, channel attention) and a wide one that stays with OpenBLAS.
    func testRoutedSgemmMatchesOpenBLAS() {
        let saved = BLAS.directSmallProducts
        defer { BLAS.directSmallProducts = saved }
        let shapes: [(m: Int, n: Int, k: Int, transB: Bool)] = [
            (24, 4096, 8, false), (8, 3000, 27, false), (3, 2048, 144, false), (42, 1000, 8, false),
            (16, 16, 5000, true), (8, 8, 4097, true), (5, 3, 70_000, true), (96, 512, 48, false),
        ]
        for shape in shapes {
            let a = randomTensor([shape.m, shape.k], seed: 7), b = randomTensor(shape.transB ? [shape.n, shape.k] : [shape.k, shape.n], seed: 8)
            let initial = randomTensor([shape.m, shape.n], seed: 9).values
            func run(_ direct: Bool, beta: Float) -> [Float] {
                BLAS.directSmallProducts = direct
                var c = initial
                a.values.withUnsafeBufferPointer { ap in
                    b.values.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            BLAS.sgemm(transB: shape.transB, m: shape.m, n: shape.n, k: shape.k, a: ap.baseAddress!,
                                       b: bp.baseAddress!, beta: beta, c: cp.baseAddress!)
                        }
                    }
                }
                return c
            }
            for beta: Float in [0, 1] {
                let blas = run(false, beta: beta), routed = run(true, beta: beta)
                let worst = zip(blas, routed).map { abs($0 - $1) / (1 + abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(shape) beta \(beta)")
            }
        }
    }
}
