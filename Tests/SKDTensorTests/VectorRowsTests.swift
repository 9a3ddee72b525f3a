import Foundation
import SKDTensor
import SKDTestSupport
import XCTest

/// Every variant of the C row kernels (portable, AVX2 + FMA, AVX-512 — each level this CPU supports) against one
/// plain scalar reference in Double, over awkward lengths (1, 7, 15, 17, 31, 33, 1000+odd: vector tails) and
/// unaligned pointers; and the ops that call them, at every level, against naive references and finite differences.
final class VectorRowsTests: XCTestCase {
    /// Lengths around the 4-, 8-, 16- and 64-lane boundaries of the variants' loops.
    static let lengths = [1, 2, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 1001, 1037]

    /// Runs `body` at every level the CPU supports (restoring the level in use afterwards).
    func forEachLevel(_ body: (Int) throws -> Void) rethrows {
        let saved = VectorRows.level
        defer { VectorRows.setLevel(saved) }
        for level in 0...VectorRows.maxLevel {
            XCTAssertEqual(VectorRows.setLevel(level), level)
            XCTAssertEqual(VectorRows.level, level)
            try body(level)
        }
    }

    /// `count` uniform values in a buffer that starts one float past a 64-byte boundary (unaligned for every
    /// vector width), with one guard value on each side.
    final class Row {
        let storage: UnsafeMutablePointer<Float>
        let count: Int
        var p: UnsafeMutablePointer<Float> { storage + 17 }
        init(_ values: [Float]) {
            count = values.count
            let raw = UnsafeMutableRawPointer.allocate(byteCount: (values.count + 34) * 4, alignment: 64)
            storage = raw.bindMemory(to: Float.self, capacity: values.count + 34)
            storage.initialize(repeating: 12345, count: values.count + 34)
            for (i, v) in values.enumerated() { storage[17 + i] = v }
        }
        convenience init(count: Int, seed: UInt64, low: Float = -1, high: Float = 1) {
            self.init(count == 0 ? [] : randomTensor([count], seed: seed, low: low, high: high).values)
        }
        var values: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
        /// The guards on either side are untouched.
        var guardsIntact: Bool { storage[16] == 12345 && storage[17 + count] == 12345 }
        deinit { UnsafeMutableRawPointer(storage).deallocate() }
    }

    func assertClose(_ actual: [Float], _ expected: [Double], absolute: Double, relative: Double, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        for i in 0..<min(actual.count, expected.count) {
            let tolerance = absolute + relative * abs(expected[i])
            if !(abs(Double(actual[i]) - expected[i]) <= tolerance) {
                XCTFail("\(what): element \(i): \(actual[i]) vs \(expected[i])", file: file, line: line)
                return
            }
        }
    }

    // MARK: Selection

    func testLevelsAreClampedAndMatchTheCPU() throws {
        let saved = VectorRows.level
        defer { VectorRows.setLevel(saved) }
        XCTAssertEqual(VectorRows.setLevel(-3), 0)
        XCTAssertFalse(VectorRows.isVectorized)
        XCTAssertEqual(VectorRows.setLevel(99), VectorRows.maxLevel)
        XCTAssertEqual(VectorRows.isVectorized, VectorRows.maxLevel > 0)
        #if arch(x86_64) && os(Linux)
        // The CPU's flags as the kernel reports them.
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let expected = flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"]) ? 2
            : flags.isSuperset(of: ["avx2", "fma"]) ? 1 : 0
        XCTAssertEqual(VectorRows.maxLevel, expected, "flags: \(flags.filter { $0.hasPrefix("avx") }.sorted())")
        #endif
    }

    // MARK: GELU

    static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())) }
    static func geluSlope(_ x: Double) -> Double {
        0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
    }

    func testGeluForwardBackwardAndGateAtEveryLevel() {
        forEachLevel { level in
            for n in Self.lengths {
                // Wide range: the far tails (|x| > 4 clamps erf) and the region around 0.
                let a = Row(count: n, seed: UInt64(n), low: -9, high: 9), b = Row(count: n, seed: UInt64(n + 1), low: -2, high: 2)
                let g = Row(count: n, seed: UInt64(n + 2)), out = Row(count: n, seed: 0), out2 = Row(count: n, seed: 0)
                let x = a.values.map(Double.init), y = b.values.map(Double.init), gv = g.values.map(Double.init)
                let tag = "level \(level) n \(n)"

                VectorRows.gelu(out.p, a.p, count: n)
                assertClose(out.values, x.map(Self.gelu), absolute: 2e-6, relative: 2e-6, "gelu \(tag)")
                VectorRows.geluGate(out.p, a.p, b.p, count: n)
                assertClose(out.values, (0..<n).map { Self.gelu(x[$0]) * y[$0] }, absolute: 4e-6, relative: 4e-6, "gate \(tag)")
                VectorRows.geluBackward(out.p, g.p, a.p, count: n)
                assertClose(out.values, (0..<n).map { gv[$0] * Self.geluSlope(x[$0]) }, absolute: 4e-6, relative: 4e-6,
                            "gelu backward \(tag)")
                VectorRows.geluGateBackward(out.p, out2.p, g.p, a.p, b.p, count: n)
                assertClose(out.values, (0..<n).map { gv[$0] * y[$0] * Self.geluSlope(x[$0]) }, absolute: 8e-6,
                             relative: 4e-6, "gate backward d1 \(tag)")
                assertClose(out2.values, (0..<n).map { gv[$0] * Self.gelu(x[$0]) }, absolute: 8e-6, relative: 4e-6,
                            "gate backward d2 \(tag)")
                // In place.
                let inPlace = Row(a.values)
                VectorRows.gelu(inPlace.p, inPlace.p, count: n)
                assertClose(inPlace.values, x.map(Self.gelu), absolute: 2e-6, relative: 2e-6, "gelu in place \(tag)")
                XCTAssertTrue(out.guardsIntact && out2.guardsIntact && inPlace.guardsIntact, "guards \(tag)")
            }
            // Count 0 writes nothing.
            let untouched = Row([Float.nan])
            VectorRows.gelu(untouched.p, untouched.p, count: 0)
            XCTAssertTrue(untouched.values[0].isNaN)
        }
    }

    func testFastMathIsTheKernelDefinition() {
        // exp within ~2 ulp of libm over its range, exactly 0 below −87.34 and for −∞, NaN for NaN.
        var x: Float = -87
        while x < 88 {
            let e = Double(FastMath.exp(x)), ref = Foundation.exp(Double(x))
            XCTAssertEqual(e, ref, accuracy: 3e-7 * ref, "exp(\(x))")
            x += 0.37
        }
        XCTAssertEqual(FastMath.exp(-.infinity), 0)
        XCTAssertEqual(FastMath.exp(-100), 0)
        XCTAssertTrue(FastMath.exp(.nan).isNaN)
        var a: Float = -6
        while a < 6 {
            XCTAssertEqual(Double(FastMath.erf(a)), Foundation.erf(Double(a)), accuracy: 4e-7, "erf(\(a))")
            a += 0.013
        }
    }

    // MARK: Softmax

    func testSoftmaxRowsAtEveryLevel() {
        forEachLevel { level in
            for n in Self.lengths {
                var values = randomTensor([n], seed: UInt64(n + 50), low: -30, high: 30).values
                if n > 3 { values[1] = -.infinity; values[n - 1] = -.infinity }   // masked entries, one in the tail
                let x = Row(values), y = Row(count: n, seed: 0), g = Row(count: n, seed: UInt64(n + 51))
                let m = values.max()!
                let e = values.map { Foundation.exp(Double($0 - m)) }, total = e.reduce(0, +)
                let expected = e.map { $0 / total }
                let tag = "level \(level) n \(n)"
                VectorRows.softmaxRow(y.p, x.p, count: n)
                assertClose(y.values, expected, absolute: 1e-7, relative: 2e-6, "softmax \(tag)")
                if n > 3 { XCTAssertEqual(y.values[1], 0); XCTAssertEqual(y.values[n - 1], 0) }
                // In place, as the MCA tiles use it.
                let inPlace = Row(values)
                VectorRows.softmaxRow(inPlace.p, inPlace.p, count: n)
                assertClose(inPlace.values, expected, absolute: 1e-7, relative: 2e-6, "softmax in place \(tag)")

                let probabilities = y.values.map(Double.init), gv = g.values.map(Double.init)
                let dot = zip(probabilities, gv).map { $0 * $1 }.reduce(0, +)
                let scale: Float = 0.37
                let dx = Row(count: n, seed: 0)
                VectorRows.softmaxBackwardRow(dx.p, g.p, y.p, count: n, scale: scale)
                let expectedDx = (0..<n).map { Double(scale) * probabilities[$0] * (gv[$0] - dot) }
                assertClose(dx.values, expectedDx, absolute: 2e-7, relative: 2e-5, "softmax backward \(tag)")
                VectorRows.softmaxBackwardRow(g.p, g.p, y.p, count: n, scale: scale)
                assertClose(g.values, expectedDx, absolute: 2e-7, relative: 2e-5, "softmax backward in place \(tag)")
                XCTAssertTrue(y.guardsIntact && dx.guardsIntact && g.guardsIntact && inPlace.guardsIntact, "guards \(tag)")
            }
            // A row of −∞ gives NaN (as PyTorch).
            let masked = Row([-.infinity, -.infinity, -.infinity])
            VectorRows.softmaxRow(masked.p, masked.p, count: 3)
            XCTAssertTrue(masked.values.allSatisfy(\.isNaN), "level \(level)")
        }
    }

    // MARK: Channel LayerNorm

    func testLayerNormChannelKernelsAtEveryLevel() {
        let eps: Float = 1e-5
        forEachLevel { level in
            for c in [1, 3, 17, 48] {
                for len in [1, 7, 15, 17, 33, 259] {
                    let stride = len + 5   // channel planes further apart than the pixels used
                    let x = Row(count: c * stride, seed: UInt64(c * 100 + len), low: 2, high: 5)   // off-centre values
                    let g = Row(count: c * stride, seed: UInt64(c * 100 + len + 1))
                    let w = Row(count: c, seed: UInt64(c + 7)), b = Row(count: c, seed: UInt64(c + 8))
                    for withBias in [true, false] {
                        let tag = "level \(level) c \(c) len \(len) \(withBias ? "WithBias" : "BiasFree")"
                        let y = Row(count: c * len, seed: 0), mean = Row(count: len, seed: 0), rstd = Row(count: len, seed: 0)
                        VectorRows.layerNormChannels(x.p, xStride: stride, y.p, yStride: len, weight: w.p,
                                                     bias: withBias ? UnsafePointer(b.p) : nil, channels: c, count: len,
                                                     eps: eps, mean: mean.p, rstd: rstd.p)
                        // The reference in Double.
                        var expectedY = [Double](repeating: 0, count: c * len)
                        var expectedDx = [Double](repeating: 0, count: c * len)
                        var expectedDw = [Double](repeating: 0, count: c), expectedDb = [Double](repeating: 0, count: c)
                        var mus = [Double](), rss = [Double]()
                        var dxMagnitude = 1e-3   // the size of r·g·w, which rounding in dx is relative to
                        for j in 0..<len {
                            let xs = (0..<c).map { Double(x.p[$0 * stride + j]) }
                            let mu = xs.reduce(0, +) / Double(c)
                            let variance = xs.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(c)
                            let r = 1 / (variance + Double(eps)).squareRoot()
                            mus.append(mu); rss.append(r)
                            let z = xs.map { withBias ? ($0 - mu) * r : $0 * r }
                            let xhat = xs.map { ($0 - mu) * r }
                            var meanA = 0.0, meanAZ = 0.0
                            for ch in 0..<c {
                                let wv = Double(w.p[ch]), gv = Double(g.p[ch * stride + j])
                                expectedY[ch * len + j] = z[ch] * wv + (withBias ? Double(b.p[ch]) : 0)
                                expectedDw[ch] += gv * z[ch]
                                expectedDb[ch] += gv
                                meanA += gv * wv / Double(c)
                                meanAZ += gv * wv * z[ch] / Double(c)
                            }
                            for ch in 0..<c {
                                let a = Double(g.p[ch * stride + j]) * Double(w.p[ch])
                                dxMagnitude = max(dxMagnitude, abs(r * a))
                                expectedDx[ch * len + j] = r * (a - (withBias ? meanA : 0) - xhat[ch] * meanAZ)
                            }
                        }
                        assertClose(y.values, expectedY, absolute: 2e-5, relative: 2e-5, "forward \(tag)")
                        assertClose(mean.values, mus, absolute: 2e-6, relative: 1e-6, "mean \(tag)")
                        assertClose(rstd.values, rss, absolute: 0, relative: 1e-4, "rstd \(tag)")

                        let dx = Row(count: c * stride, seed: 0), dw = Row(count: c, seed: 0), db = Row(count: c, seed: 0)
                        let scratch = Row(count: 3 * len, seed: 0)
                        VectorRows.layerNormChannelsBackward(
                            x.p, g.p, stride: stride, weight: w.p, mean: mean.p, rstd: rstd.p, channels: c, count: len,
                            withBias: withBias, dx: dx.p, dw: dw.p, db: db.p, scratch: scratch.p)
                        let dxUsed = (0..<c).flatMap { ch in (0..<len).map { dx.p[ch * stride + $0] } }
                        assertClose(dxUsed, expectedDx, absolute: 2e-6 * dxMagnitude, relative: 1e-4, "dx \(tag)")
                        assertClose(dw.values, expectedDw, absolute: 1e-4, relative: 1e-4, "dw \(tag)")
                        assertClose(db.values, expectedDb, absolute: 1e-4, relative: 1e-5, "db \(tag)")
                        // Only the requested outputs are written.
                        let dwOnly = Row(count: c, seed: 0)
                        VectorRows.layerNormChannelsBackward(
                            x.p, g.p, stride: stride, weight: w.p, mean: mean.p, rstd: rstd.p, channels: c, count: len,
                            withBias: withBias, dx: nil, dw: dwOnly.p, db: nil, scratch: scratch.p)
                        XCTAssertEqual(dwOnly.values, dw.values, "dw alone \(tag)")
                        XCTAssertTrue(y.guardsIntact && dx.guardsIntact && scratch.guardsIntact && dw.guardsIntact, "guards \(tag)")
                    }
                }
            }
        }
    }

    // MARK: Depthwise rows

    func testDepthwiseRowKernelsAtEveryLevel() {
        forEachLevel { level in
            for k in [1, 2, 3, 4, 5, 7] {
                for wi in [1, 2, 4, 7, 15, 17, 31, 33, 1001] {
                    for pad in Set([0, k / 2, k - 1, -1]) {
                        let wo = wi + 2 * pad - k + 1
                        if wo <= 0 { continue }
                        let tag = "level \(level) k \(k) wi \(wi) pad \(pad)"
                        let src = Row(count: wi, seed: UInt64(wi * 10 + k), low: -3, high: 3)
                        let w = Row(count: k, seed: UInt64(k + 99)), start = Row(count: wo, seed: UInt64(wo + 3))
                        let out = Row(start.values)
                        VectorRows.depthwiseRow(out.p, outCount: wo, src.p, inCount: wi, weights: w.p, kernel: k, padding: pad)
                        var expected = start.values.map(Double.init)
                        for i in 0..<wo {
                            for kj in 0..<k {
                                let j = i + kj - pad
                                if j < 0 || j >= wi { continue }
                                expected[i] += Double(w.p[kj]) * Double(src.p[j])
                            }
                        }
                        assertClose(out.values, expected, absolute: 1e-5, relative: 1e-6, "row \(tag)")
                        XCTAssertTrue(out.guardsIntact, "guards \(tag)")
                    }
                }
            }
        }
    }

    func testDepthwiseOutputRowAtEveryLevel() {
        forEachLevel { level in
            for (kh, kw) in [(3, 3), (5, 5), (3, 5), (1, 3), (2, 4), (7, 7)] {
                for wi in [1, 4, 7, 15, 16, 17, 18, 31, 33, 128, 1001] {
                    for pad in Set([0, kw / 2, kw - 1, -1]) {
                        let wo = wi + 2 * pad - kw + 1
                        if wo <= 0 { continue }
                        let lines = (0..<kh).map { Row(count: wi, seed: UInt64(wi * 31 + $0 + kw), low: -3, high: 3) }
                        let w = Row(count: kh * kw, seed: UInt64(kh * 7 + kw)), bias: Float = 0.375
                        // Every pattern of missing (padding) rows for 3-row kernels; the first row missing otherwise.
                        let masks = kh == 3 ? Array(0..<8) : [0, 1]
                        for mask in masks {
                            let tag = "level \(level) k \(kh)×\(kw) wi \(wi) pad \(pad) mask \(mask)"
                            let out = Row(count: wo, seed: 5)
                            var pointers = (0..<kh).map { ki -> UnsafePointer<Float>? in
                                mask & (1 << ki) != 0 ? nil : UnsafePointer(lines[ki].p)
                            }
                            pointers.withUnsafeMutableBufferPointer { rows in
                                VectorRows.depthwiseOutputRow(out.p, outCount: wo, rows: UnsafePointer(rows.baseAddress!),
                                                              kernelH: kh, inCount: wi, weights: w.p, kernelW: kw,
                                                              padding: pad, bias: bias)
                            }
                            var expected = [Double](repeating: Double(bias), count: wo)
                            for i in 0..<wo {
                                for ki in 0..<kh where mask & (1 << ki) == 0 {
                                    for kj in 0..<kw {
                                        let j = i + kj - pad
                                        if j < 0 || j >= wi { continue }
                                        expected[i] += Double(w.p[ki * kw + kj]) * Double(lines[ki].p[j])
                                    }
                                }
                            }
                            assertClose(out.values, expected, absolute: 2e-5, relative: 1e-6, "output row \(tag)")
                            XCTAssertTrue(out.guardsIntact, "guards \(tag)")
                        }
                    }
                }
            }
        }
    }

    func testDepthwisePlaneWeightGradientAtEveryLevel() {
        forEachLevel { level in
            for (kh, kw) in [(1, 1), (3, 3), (5, 5), (3, 5), (7, 7), (2, 4)] {
                for (h, w) in [(1, 1), (3, 7), (5, 15), (4, 17), (6, 33), (9, 128), (3, 1001)] {
                    for (padH, padW) in Set([(0, 0), (kh / 2, kw / 2), (kh - 1, kw - 1), (-1, -1)].map { [$0.0, $0.1] }).map({ ($0[0], $0[1]) }) {
                        let ho = h + 2 * padH - kh + 1, wo = w + 2 * padW - kw + 1
                        if ho <= 0 || wo <= 0 { continue }
                        let tag = "level \(level) k \(kh)×\(kw) \(h)×\(w) pad \(padH),\(padW)"
                        let x = Row(count: h * w, seed: UInt64(h * 1000 + w), low: -2, high: 2)
                        let g = Row(count: ho * wo, seed: UInt64(ho * 1000 + wo + 1))
                        var expected = [Double](repeating: 0.5, count: kh * kw)
                        for oh in 0..<ho { for ow in 0..<wo { for ki in 0..<kh { for kj in 0..<kw {
                            let ih = oh + ki - padH, iw = ow + kj - padW
                            if ih < 0 || ih >= h || iw < 0 || iw >= w { continue }
                            expected[ki * kw + kj] += Double(g.p[oh * wo + ow]) * Double(x.p[ih * w + iw])
                        } } } }
                        var gw = [Double](repeating: 0.5, count: kh * kw)
                        gw.withUnsafeMutableBufferPointer {
                            VectorRows.depthwisePlaneWeightGradient($0.baseAddress!, g.p, outH: ho, outW: wo, x.p, height: h,
                                                                    width: w, kernelH: kh, kernelW: kw, padH: padH, padW: padW)
                        }
                        let scale = Double(ho * wo).squareRoot()
                        for t in 0..<(kh * kw) {
                            XCTAssertEqual(gw[t], expected[t], accuracy: 2e-6 * scale * (1 + abs(expected[t])), "gw[\(t)] \(tag)")
                        }
                    }
                }
            }
        }
    }

    // MARK: Adam

    func testAdamUpdateIsBitIdenticalToTheScalarDefinitionAtEveryLevel() {
        let oneMinusBeta1: Float = 0.1, beta2: Float = 0.999, oneMinusBeta2 = Float(1 - 0.999)
        let stepSize: Float = 3.2e-3, correction2: Float = 0.0447, eps: Float = 1e-8
        forEachLevel { level in
            for n in Self.lengths {
                for decay: Float in [0, 0.01] {
                    let p = Row(count: n, seed: UInt64(n + 1)), g = Row(count: n, seed: UInt64(n + 2))
                    let m = Row(count: n, seed: UInt64(n + 3), low: -0.1, high: 0.1)
                    let v = Row(count: n, seed: UInt64(n + 4), low: 0, high: 0.01)
                    var ep = p.values, em = m.values, ev = v.values
                    let gv = g.values
                    for i in 0..<n {
                        let gi = gv[i] + decay * ep[i]
                        let mi = em[i] + oneMinusBeta1 * (gi - em[i])
                        let vi = beta2 * ev[i] + oneMinusBeta2 * gi * gi
                        em[i] = mi; ev[i] = vi
                        ep[i] -= stepSize * mi / (vi.squareRoot() / correction2 + eps)
                    }
                    VectorRows.adamUpdate(parameters: p.p, gradients: g.p, firstMoments: m.p, secondMoments: v.p, count: n,
                                          weightDecay: decay, oneMinusBeta1: oneMinusBeta1, beta2: beta2,
                                          oneMinusBeta2: oneMinusBeta2, stepSize: stepSize, correction2: correction2, eps: eps)
                    let tag = "level \(level) n \(n) decay \(decay)"
                    XCTAssertEqual(p.values.map(\.bitPattern), ep.map(\.bitPattern), "p \(tag)")
                    XCTAssertEqual(m.values.map(\.bitPattern), em.map(\.bitPattern), "m \(tag)")
                    XCTAssertEqual(v.values.map(\.bitPattern), ev.map(\.bitPattern), "v \(tag)")
                    XCTAssertTrue(p.guardsIntact && m.guardsIntact && v.guardsIntact, "guards \(tag)")
                }
            }
        }
    }

    // MARK: The ops at every level

    /// Depthwise conv2d in Double, the definition.
    func naiveDepthwise(_ x: Tensor, _ w: Tensor, _ b: Tensor?, padding p: Int) -> [Double] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), k = w.shape[2]
        let ho = h + 2 * p - k + 1, wo = wd + 2 * p - k + 1
        let xv = x.values, wv = w.values, bv = b?.values
        var out = [Double](repeating: 0, count: n * c * ho * wo)
        for img in 0..<n { for ch in 0..<c { for oh in 0..<ho { for ow in 0..<wo {
            var s = Double(bv?[ch] ?? 0)
            for ki in 0..<k { for kj in 0..<k {
                let ih = oh + ki - p, iw = ow + kj - p
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                s += Double(wv[(ch * k + ki) * k + kj]) * Double(xv[((img * c + ch) * h + ih) * wd + iw])
            } }
            out[((img * c + ch) * ho + oh) * wo + ow] = s
        } } } }
        return out
    }

    func testDepthwiseConvolutionAtEveryLevel() {
        forEachLevel { level in
            for (k, p, h, w) in [(3, 1, 5, 1), (3, 1, 4, 7), (3, 1, 3, 17), (5, 2, 6, 33), (5, 2, 2, 15), (3, 0, 5, 9),
                                 (5, 1, 7, 18)] {
                let x = randomTensor([2, 3, h, w], seed: UInt64(k * 100 + w), low: -2, high: 2)
                let weight = randomTensor([3, 1, k, k], seed: UInt64(w + 5)), bias = randomTensor([3], seed: 9)
                let tag = "level \(level) k \(k) pad \(p) \(h)×\(w)"
                let y = noGrad { Tensor.conv2d(x, weight: weight, bias: bias, padding: p, groups: 3) }
                assertClose(y.values, naiveDepthwise(x, weight, bias, padding: p), absolute: 1e-5, relative: 1e-5, tag)
                checkGradients("depthwise \(tag)", inputs: [x, weight, bias]) {
                    Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], padding: p, groups: 3)
                }
            }
        }
    }

    func testOpsGradientsAtEveryLevel() {
        forEachLevel { level in
            for shape in [[1, 3, 2, 5], [2, 17, 3, 3], [1, 1, 1, 33]] {
                let c = shape[1]
                let x = randomTensor(shape, seed: 3, low: -2, high: 2)
                let w = randomTensor([c], seed: 4, low: 0.5, high: 1.5), b = randomTensor([c], seed: 5)
                checkGradients("layerNormChannels WithBias \(shape) level \(level)", inputs: [x, w, b]) {
                    $0[0].layerNormChannels(weight: $0[1], bias: $0[2])
                }
                checkGradients("layerNormChannels BiasFree \(shape) level \(level)", inputs: [x, w]) {
                    $0[0].layerNormChannels(weight: $0[1], bias: nil)
                }
            }
            for n in [1, 7, 17, 33] {
                let x = randomTensor([3, n], seed: UInt64(n), low: -3, high: 3)
                checkGradients("softmax n \(n) level \(level)", inputs: [x]) { $0[0].softmax() }
                checkGradients("gelu n \(n) level \(level)", inputs: [x]) { $0[0].gelu() }
            }
        }
    }

    /// The ops give the same values at every level, up to rounding.
    func testOpsAgreeAcrossLevels() {
        let x = randomTensor([2, 48, 9, 37], seed: 77, low: -3, high: 3)
        let w = randomTensor([48], seed: 78), b = randomTensor([48], seed: 79)
        let dw = randomTensor([48, 1, 5, 5], seed: 80)
        var results: [[Float]] = []
        forEachLevel { _ in
            let ln = noGrad { x.layerNormChannels(weight: w, bias: b) }
            let sm = noGrad { x.softmax() }
            let conv = noGrad { Tensor.conv2d(x, weight: dw, bias: nil, padding: 2, groups: 48) }
            results.append(ln.values + sm.values + conv.values)
        }
        for r in results.dropFirst() {
            for i in r.indices where abs(r[i] - results[0][i]) > 2e-5 * max(1, abs(results[0][i])) {
                XCTFail("element \(i): \(r[i]) vs portable \(results[0][i])")
                break
            }
        }
    }
}
