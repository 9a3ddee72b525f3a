import SKDTensor
import SKDTestSupport
import XCTest

/// One conv2d configuration under test.
private struct ConvCase: CustomStringConvertible {
    var n = 1, cin: Int, cout: Int, h: Int, w: Int, kh: Int, kw: Int
    var stride = 1, padding = 0, dilation = 1, groups = 1
    var description: String {
        "x[\(n),\(cin),\(h),\(w)] w[\(cout),\(cin / groups),\(kh),\(kw)] s\(stride) p\(padding) d\(dilation) g\(groups)"
    }
}

final class ConvolutionTests: XCTestCase {
    // MARK: References

    /// Direct convolution: for every output element, the sum over its group's input channels and kernel taps.
    private func naiveConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride s: Int, padding p: Int, dilation d: Int, groups: Int) -> Tensor {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, cinG, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let coutG = cout / groups
        let ho = (h + 2 * p - d * (kh - 1) - 1) / s + 1, wo = (wd + 2 * p - d * (kw - 1) - 1) / s + 1
        let xv = x.values, wv = w.values, bv = b?.values
        var out = [Float](repeating: 0, count: n * cout * ho * wo)
        for b0 in 0..<n { for oc in 0..<cout { for oh in 0..<ho { for ow in 0..<wo {
            let g = oc / coutG
            var acc = Double(bv?[oc] ?? 0)
            for ci in 0..<cinG { for ki in 0..<kh { for kj in 0..<kw {
                let ih = oh * s - p + ki * d, iw = ow * s - p + kj * d
                guard ih >= 0, ih < h, iw >= 0, iw < wd else { continue }
                acc += Double(xv[((b0 * cin + g * cinG + ci) * h + ih) * wd + iw]) * Double(wv[((oc * cinG + ci) * kh + ki) * kw + kj])
            } } }
            out[((b0 * cout + oc) * ho + oh) * wo + ow] = Float(acc)
        } } } }
        XCTAssertEqual(ho * wo * n * cout, out.count)
        return Tensor(shape: [n, cout, ho, wo], values: out)
    }

    /// Transposed convolution as a scatter: every input element adds `x · w[ci, oc]` into the output window
    /// it spreads to.
    private func naiveConvTranspose2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride s: Int, padding p: Int) -> Tensor {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[1], w.shape[2], w.shape[3])
        let ho = (h - 1) * s - 2 * p + kh, wo = (wd - 1) * s - 2 * p + kw
        let xv = x.values, wv = w.values
        var out = [Double](repeating: 0, count: n * cout * ho * wo)
        for b0 in 0..<n { for ci in 0..<cin { for ih in 0..<h { for iw in 0..<wd {
            let v = Double(xv[((b0 * cin + ci) * h + ih) * wd + iw])
            for oc in 0..<cout { for ki in 0..<kh { for kj in 0..<kw {
                let oh = ih * s - p + ki, ow = iw * s - p + kj
                guard oh >= 0, oh < ho, ow >= 0, ow < wo else { continue }
                out[((b0 * cout + oc) * ho + oh) * wo + ow] += v * Double(wv[((ci * cout + oc) * kh + ki) * kw + kj])
            } } }
        } } } }
        if let b {
            for i in 0..<out.count { out[i] += Double(b.values[(i / (ho * wo)) % cout]) }
        }
        return Tensor(shape: [n, cout, ho, wo], values: out.map { Float($0) })
    }

    private let cases: [ConvCase] = [
        ConvCase(n: 2, cin: 3, cout: 5, h: 7, w: 9, kh: 3, kw: 3, padding: 1),
        ConvCase(cin: 5, cout: 6, h: 9, w: 8, kh: 3, kw: 3, stride: 2, padding: 1),
        ConvCase(cin: 3, cout: 2, h: 9, w: 11, kh: 3, kw: 3, padding: 2, dilation: 2),
        ConvCase(cin: 4, cout: 3, h: 6, w: 7, kh: 2, kw: 4, stride: 2, padding: 1),
        ConvCase(cin: 3, cout: 7, h: 5, w: 6, kh: 5, kw: 5),
        // Pointwise (pure GEMM) and strided pointwise (im2col).
        ConvCase(n: 2, cin: 5, cout: 7, h: 5, w: 7, kh: 1, kw: 1),
        ConvCase(cin: 5, cout: 3, h: 7, w: 7, kh: 1, kw: 1, stride: 2),
        ConvCase(cin: 6, cout: 9, h: 5, w: 7, kh: 1, kw: 1, groups: 3),
        // Grouped, non-depthwise: two input channels and one output channel per group, as weight [42, 2, 3, 3].
        ConvCase(cin: 10, cout: 5, h: 7, w: 6, kh: 3, kw: 3, padding: 1, groups: 5),
        ConvCase(n: 2, cin: 6, cout: 9, h: 7, w: 5, kh: 3, kw: 3, stride: 2, padding: 2, dilation: 2, groups: 3),
        // Depthwise: direct kernel.
        ConvCase(n: 2, cin: 5, cout: 5, h: 9, w: 7, kh: 3, kw: 3, padding: 1, groups: 5),
        ConvCase(cin: 3, cout: 3, h: 11, w: 10, kh: 5, kw: 5, padding: 2, groups: 3),
        ConvCase(cin: 3, cout: 3, h: 13, w: 12, kh: 7, kw: 7, padding: 3, groups: 3),
        ConvCase(cin: 5, cout: 5, h: 11, w: 9, kh: 3, kw: 3, padding: 2, dilation: 2, groups: 5),
        ConvCase(cin: 3, cout: 3, h: 12, w: 11, kh: 5, kw: 5, padding: 4, dilation: 2, groups: 3),
        ConvCase(cin: 3, cout: 3, h: 13, w: 14, kh: 7, kw: 7, stride: 2, padding: 3, dilation: 2, groups: 3),
        ConvCase(cin: 5, cout: 5, h: 9, w: 8, kh: 3, kw: 3, stride: 2, padding: 1, groups: 5),
        ConvCase(cin: 2, cout: 2, h: 6, w: 5, kh: 3, kw: 3, stride: 3, groups: 2),
        // Depthwise, non-square kernels: every width of fused tap groups (1…4) and per-axis padding.
        ConvCase(cin: 4, cout: 4, h: 7, w: 9, kh: 3, kw: 5, padding: 1, groups: 4),
        ConvCase(cin: 3, cout: 3, h: 6, w: 9, kh: 2, kw: 4, padding: 1, groups: 3),
        ConvCase(cin: 3, cout: 3, h: 7, w: 13, kh: 3, kw: 6, padding: 2, dilation: 2, groups: 3),
        ConvCase(n: 2, cin: 3, cout: 3, h: 5, w: 11, kh: 1, kw: 7, padding: 3, groups: 3),
        // Padding larger than the input reach: whole rows and columns of taps fall outside.
        ConvCase(cin: 2, cout: 3, h: 3, w: 4, kh: 3, kw: 3, padding: 3),
        ConvCase(cin: 2, cout: 2, h: 3, w: 4, kh: 3, kw: 3, padding: 3, groups: 2),
    ]

    private func tensors(_ c: ConvCase, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        (randomTensor([c.n, c.cin, c.h, c.w], seed: seed),
         randomTensor([c.cout, c.cin / c.groups, c.kh, c.kw], seed: seed + 1),
         randomTensor([c.cout], seed: seed + 2))
    }

    private func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ c: ConvCase) -> Tensor {
        Tensor.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
    }

    // MARK: conv2d

    func testConv2dMatchesDirectConvolution() {
        for (i, c) in cases.enumerated() {
            let (x, w, b) = tensors(c, seed: UInt64(10 * i + 1))
            for bias in [b, nil] {
                let y = conv(x, w, bias, c)
                let ref = naiveConv2d(x, w, bias, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
                XCTAssertEqual(y.shape, ref.shape, "\(c)")
                XCTAssertLessThan(relativeError(y, ref), 1e-5, "\(c) bias \(bias != nil)")
            }
        }
    }

    func testConv2dOutputSizeMatchesPyTorch() {
        // floor((H + 2p − d(k−1) − 1) / s) + 1: (10 + 2 − 4 − 1) / 2 + 1 = 4 and (8 + 2 − 4 − 1) / 2 + 1 = 3.
        let y = Tensor.conv2d(Tensor(zeros: [1, 1, 10, 8]), weight: Tensor(zeros: [2, 1, 3, 3]), stride: 2, padding: 1, dilation: 2)
        XCTAssertEqual(y.shape, [1, 2, 4, 3])
        let z = Tensor.conv2d(Tensor(zeros: [2, 4, 8, 8]), weight: Tensor(zeros: [4, 1, 5, 5]), stride: 2, padding: 2, groups: 4)
        XCTAssertEqual(z.shape, [2, 4, 4, 4])
    }

    func testConv2dKnownValues() {
        // 3×3 input 1..9, 2×2 kernel of ones, no padding: window sums.
        let x = Tensor(shape: [1, 1, 3, 3], values: (1...9).map(Float.init))
        let y = Tensor.conv2d(x, weight: Tensor(ones: [1, 1, 2, 2]), bias: Tensor(shape: [1], values: [0.5]))
        XCTAssertEqual(y.values, [12.5, 16.5, 24.5, 28.5])
        // The same through the depthwise kernel, with padding 1: corner sees only 1.
        let yd = Tensor.conv2d(x, weight: Tensor(ones: [1, 1, 2, 2]), padding: 1, groups: 1)
        XCTAssertEqual(yd.values.first, 1)
        XCTAssertEqual(yd.shape, [1, 1, 4, 4])
    }

    func testConv2dGradients() {
        for (i, c) in cases.enumerated() {
            let (x, w, b) = tensors(c, seed: UInt64(10 * i + 3))
            checkGradients("conv2d \(c)", inputs: [x, w, b]) { conv($0[0], $0[1], $0[2], c) }
        }
        // Each input alone (the backward skips work for inputs that need no gradient).
        let c = cases[1]
        let (x, w, _) = tensors(c, seed: 99)
        checkGradients("conv2d x only", inputs: [x]) { conv($0[0], w, nil, c) }
        checkGradients("conv2d w only", inputs: [w]) { conv(x, $0[0], nil, c) }
    }

    /// A one-row column budget splits every image into several bands: results must not change.
    func testConv2dBandedLowering() {
        let saved = ConvolutionTuning.columnBufferBytes
        defer { ConvolutionTuning.columnBufferBytes = saved }
        for c in [cases[0], cases[1], cases[2], cases[5], cases[8], cases[9]] {
            let (x, w, b) = tensors(c, seed: 7)
            ConvolutionTuning.columnBufferBytes = saved
            let whole = conv(x, w, b, c)
            ConvolutionTuning.columnBufferBytes = 1
            let banded = conv(x, w, b, c)
            XCTAssertLessThan(relativeError(banded, whole), 1e-6, "\(c)")
            checkGradients("banded conv2d \(c)", inputs: [x, w, b]) { conv($0[0], $0[1], $0[2], c) }
            ConvolutionTuning.columnBufferBytes = 3 * 4 * c.cin * c.kh * c.kw * c.w
            checkGradients("3-row bands conv2d \(c)", inputs: [x, w, b]) { conv($0[0], $0[1], $0[2], c) }
        }
    }

    func testLargerConvAgainstReference() {
        // Big enough that im2col, col2im and the depthwise kernels take the parallel path.
        let x = randomTensor([1, 12, 40, 37], seed: 21), w = randomTensor([16, 12, 3, 3], seed: 22)
        let y = Tensor.conv2d(x, weight: w, padding: 1)
        XCTAssertLessThan(relativeError(y, naiveConv2d(x, w, nil, stride: 1, padding: 1, dilation: 1, groups: 1)), 1e-5)
        let wd = randomTensor([12, 1, 5, 5], seed: 23)
        let yd = Tensor.conv2d(x, weight: wd, padding: 4, dilation: 2, groups: 12)
        XCTAssertLessThan(relativeError(yd, naiveConv2d(x, wd, nil, stride: 1, padding: 4, dilation: 2, groups: 12)), 1e-5)
        checkGradients("parallel conv2d", inputs: [x, w], options: GradCheckOptions(maxElements: 24)) {
            Tensor.conv2d($0[0], weight: $0[1], padding: 1)
        }
        checkGradients("parallel depthwise", inputs: [x, wd], options: GradCheckOptions(maxElements: 24)) {
            Tensor.conv2d($0[0], weight: $0[1], padding: 4, dilation: 2, groups: 12)
        }
    }

    // MARK: convTranspose2d

    private let transposeCases: [(n: Int, cin: Int, cout: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, padding: Int)] = [
        (2, 3, 5, 4, 5, 2, 2, 2, 0),   // Uformer's upsample
        (1, 4, 3, 5, 3, 3, 3, 2, 1),
        (1, 3, 2, 3, 4, 4, 4, 2, 1),
        (1, 5, 3, 4, 4, 3, 3, 1, 0),
        (1, 2, 3, 3, 5, 3, 2, 3, 1),
        (2, 3, 4, 5, 7, 1, 1, 1, 0),
    ]

    func testConvTransposeMatchesScatter() {
        for (i, c) in transposeCases.enumerated() {
            let x = randomTensor([c.n, c.cin, c.h, c.w], seed: UInt64(40 + i))
            let w = randomTensor([c.cin, c.cout, c.kh, c.kw], seed: UInt64(60 + i))
            let b = randomTensor([c.cout], seed: UInt64(80 + i))
            for bias in [b, nil] {
                let y = Tensor.convTranspose2d(x, weight: w, bias: bias, stride: c.stride, padding: c.padding)
                let ref = naiveConvTranspose2d(x, w, bias, stride: c.stride, padding: c.padding)
                XCTAssertEqual(y.shape, ref.shape, "\(c)")
                XCTAssertLessThan(relativeError(y, ref), 1e-5, "\(c)")
            }
        }
    }

    func testConvTransposeIsAdjointOfConv() {
        // ⟨conv(x, W), y⟩ = ⟨x, convT(y, W)⟩ with the conv weight [Cout, Cin, k, k] read as the convT weight.
        // Sizes where the strided conv reads every input column, so no output padding is needed.
        let x = randomTensor([2, 3, 9, 7], seed: 5), w = randomTensor([4, 3, 3, 3], seed: 6)
        let cx = Tensor.conv2d(x, weight: w, stride: 2, padding: 1)
        let y = randomTensor(cx.shape, seed: 7)
        let ty = Tensor.convTranspose2d(y, weight: w, stride: 2, padding: 1)
        XCTAssertEqual(ty.shape, x.shape)
        let lhs = (cx * y).sum().item
        let rhs = (x * ty).sum().item
        XCTAssertEqual(lhs, rhs, accuracy: 1e-3 * abs(lhs) + 1e-3)
    }

    func testConvTransposeGradients() {
        for c in transposeCases {
            let x = randomTensor([c.n, c.cin, c.h, c.w], seed: 1)
            let w = randomTensor([c.cin, c.cout, c.kh, c.kw], seed: 2)
            let b = randomTensor([c.cout], seed: 3)
            checkGradients("convTranspose2d \(c)", inputs: [x, w, b]) {
                Tensor.convTranspose2d($0[0], weight: $0[1], bias: $0[2], stride: c.stride, padding: c.padding)
            }
        }
        let saved = ConvolutionTuning.columnBufferBytes
        defer { ConvolutionTuning.columnBufferBytes = saved }
        ConvolutionTuning.columnBufferBytes = 1
        let x = randomTensor([2, 3, 5, 4], seed: 4), w = randomTensor([3, 2, 3, 3], seed: 5)
        let banded = Tensor.convTranspose2d(x, weight: w, stride: 2, padding: 1)
        XCTAssertLessThan(relativeError(banded, naiveConvTranspose2d(x, w, nil, stride: 2, padding: 1)), 1e-5)
        checkGradients("banded convTranspose2d", inputs: [x, w]) { Tensor.convTranspose2d($0[0], weight: $0[1], stride: 2, padding: 1) }
    }

    // MARK: Pixel shuffle

    func testPixelShuffleValuesAndRoundTrip() {
        // One sample, one output channel, r = 2: channel i·2 + j fills sub-pixel (i, j).
        let x = Tensor(shape: [1, 4, 1, 2], values: [0, 1, 10, 11, 20, 21, 30, 31])
        let y = x.pixelShuffle(2)
        XCTAssertEqual(y.shape, [1, 1, 2, 4])
        XCTAssertEqual(y.values, [0, 10, 1, 11, 20, 30, 21, 31])
        XCTAssertEqual(y.pixelUnshuffle(2).values, x.values)

        let z = randomTensor([2, 18, 5, 3], seed: 9)
        let s = z.pixelShuffle(3)
        XCTAssertEqual(s.shape, [2, 2, 15, 9])
        XCTAssertEqual(s.pixelUnshuffle(3).values, z.values)
        let u = randomTensor([2, 3, 6, 4], seed: 10)
        XCTAssertEqual(u.pixelUnshuffle(2).shape, [2, 12, 3, 2])
        XCTAssertEqual(u.pixelUnshuffle(2).pixelShuffle(2).values, u.values)
        // Matches the definition on a random tensor: out[n, c, h·r+i, w·r+j] = in[n, c·r²+i·r+j, h, w].
        let zv = z.values, sv = s.values
        for n in 0..<2 { for c in 0..<2 { for h in 0..<5 { for w in 0..<3 { for i in 0..<3 { for j in 0..<3 {
            XCTAssertEqual(sv[((n * 2 + c) * 15 + h * 3 + i) * 9 + w * 3 + j], zv[((n * 18 + c * 9 + i * 3 + j) * 5 + h) * 3 + w])
        } } } } } }
    }

    func testPixelShuffleGradients() {
        checkGradients("pixelShuffle", inputs: [randomTensor([2, 8, 3, 5], seed: 11)]) { $0[0].pixelShuffle(2) }
        checkGradients("pixelUnshuffle", inputs: [randomTensor([1, 3, 6, 9], seed: 12)]) { $0[0].pixelUnshuffle(3) }
    }

    // MARK: Padding and cropping

    func testReflectPadValues() {
        // torch.nn.functional.pad(arange(1, 13).view(1, 1, 3, 4), (2, 1, 1, 2), mode='reflect').
        let x = Tensor(shape: [1, 1, 3, 4], values: (1...12).map(Float.init))
        let y = x.padded2d(left: 2, right: 1, top: 1, bottom: 2, mode: .reflect)
        XCTAssertEqual(y.shape, [1, 1, 6, 7])
        XCTAssertEqual(y.values, [
            7, 6, 5, 6, 7, 8, 7,
            3, 2, 1, 2, 3, 4, 3,
            7, 6, 5, 6, 7, 8, 7,
            11, 10, 9, 10, 11, 12, 11,
            7, 6, 5, 6, 7, 8, 7,
            3, 2, 1, 2, 3, 4, 3,
        ])
        let z = x.padded2d(left: 1, right: 0, top: 0, bottom: 1)
        XCTAssertEqual(z.values, [0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 0, 0, 0, 0])
    }

    func testCropValues() {
        let x = Tensor(shape: [2, 3, 4], values: (0..<24).map(Float.init))
        let y = x.cropped2d(top: 1, left: 1, height: 2, width: 2)
        XCTAssertEqual(y.shape, [2, 2, 2])
        XCTAssertEqual(y.values, [5, 6, 9, 10, 17, 18, 21, 22])
        // Cropping undoes zero padding.
        let p = x.padded2d(left: 3, right: 1, top: 2, bottom: 0)
        XCTAssertEqual(p.cropped2d(top: 2, left: 3, height: 3, width: 4).values, x.values)
    }

    func testPaddingGradients() {
        let x = randomTensor([2, 3, 5, 7], seed: 13)
        checkGradients("pad zeros", inputs: [x]) { $0[0].padded2d(left: 2, right: 0, top: 1, bottom: 3) }
        checkGradients("pad reflect", inputs: [x]) { $0[0].padded2d(left: 3, right: 6, top: 4, bottom: 2, mode: .reflect) }
        checkGradients("pad reflect rank 3", inputs: [randomTensor([3, 4, 3], seed: 14)]) {
            $0[0].padded2d(left: 2, right: 2, top: 3, bottom: 1, mode: .reflect)
        }
        checkGradients("crop", inputs: [x]) { $0[0].cropped2d(top: 1, left: 2, height: 3, width: 4) }
    }
}
